package term

import "github.com/mattn/go-runewidth"

// widthCond is fixed (not taken from the locale) so that the model lays out
// text the same way wherever Berth runs: ambiguous-width characters are
// narrow, as in tmux and Terminal.app with default settings.
var widthCond = func() *runewidth.Condition {
	c := runewidth.NewCondition()
	c.EastAsianWidth = false
	c.StrictEmojiNeutral = true
	return c
}()

// runeWidth returns the number of columns r occupies: 0 (combining, joiners,
// variation selectors), 1 or 2.
func runeWidth(r rune) int {
	if r < 0x300 {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return 0
		}
		return 1
	}
	return widthCond.RuneWidth(r)
}
