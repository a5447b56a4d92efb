package notify

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ImportResult is the notification after a dropped or opened file was
// imported: the image names loaded, or the exact reason it was refused.
func ImportResult(file string, images []string, err error) Notification {
	base := filepath.Base(file)
	if err != nil {
		return Notification{ID: "berth.import." + base, Title: "Could not import " + base, Body: err.Error()}
	}
	n := len(images)
	shown := images
	if n > 4 {
		shown = append(images[:4:4], fmt.Sprintf("and %d more", n-4))
	}
	body := strings.Join(shown, ", ")
	if n == 0 {
		body = "The file held no tagged images."
	}
	return Notification{
		ID:    "berth.import." + base,
		Title: fmt.Sprintf("Imported %d %s from %s", n, plural(n, "image", "images"), base),
		Body:  body, Count: n,
	}
}
