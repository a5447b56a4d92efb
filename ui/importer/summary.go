package importer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/ui/model"
	"github.com/berth-dev/berth/ui/notify"
)

// Result is the outcome for one dropped path.
type Result struct {
	Path   string
	Images []string // names loaded
	Err    error    // why it was refused or failed
}

// Plan classifies every dropped or opened path: accepted items (in drop
// order) and the refusals, each with its reason.
func Plan(paths []string) (accepted []Item, refused []Result) {
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		it, err := Classify(p)
		if err != nil {
			refused = append(refused, Result{Path: p, Err: err})
			continue
		}
		accepted = append(accepted, it)
	}
	return accepted, refused
}

// Outcome is what the user is told after a drop: one notification for
// everything that loaded and one alert for everything refused (either may
// be nil).
type Outcome struct {
	Notification *notify.Notification
	Alert        *model.Alert
}

// Summarize aggregates a drop's results into one notification and one
// alert, so dropping ten files does not raise ten of each.
func Summarize(results []Result) Outcome {
	var ok, bad []Result
	for _, r := range results {
		if r.Err != nil {
			bad = append(bad, r)
		} else {
			ok = append(ok, r)
		}
	}
	var out Outcome
	switch {
	case len(ok) == 1:
		n := notify.ImportResult(ok[0].Path, ok[0].Images, nil)
		out.Notification = &n
	case len(ok) > 1:
		var names []string
		for _, r := range ok {
			names = append(names, r.Images...)
		}
		n := notify.ImportResult("", names, nil)
		n.ID = "berth.import.batch"
		n.Title = fmt.Sprintf("Imported %d %s from %d files", len(names), plural(len(names), "image", "images"), len(ok))
		out.Notification = &n
	}
	switch {
	case len(bad) == 1:
		a := Refusal(bad[0].Path, bad[0].Err)
		out.Alert = &a
	case len(bad) > 1:
		lines := make([]string, len(bad))
		for i, r := range bad {
			lines[i] = filepath.Base(r.Path) + ": " + Refusal(r.Path, r.Err).Detail
		}
		out.Alert = &model.Alert{
			Title:  fmt.Sprintf("Could not import %d of %d files", len(bad), len(results)),
			Detail: strings.Join(lines, "\n"),
		}
	}
	return out
}

// Refusal is the alert for one file: its name and the exact reason (the
// store's or the classifier's line, without the client's "Error response
// from daemon:" prefix; engine-down and time-outs get the app's usual
// advice).
func Refusal(p string, err error) model.Alert {
	if errors.Is(err, context.Canceled) {
		return model.Alert{Title: "Import of " + filepath.Base(p) + " cancelled", Detail: "Nothing from this file was added."}
	}
	a := model.ErrorAlert("import "+filepath.Base(p), err)
	a.Detail = strings.TrimPrefix(a.Detail, "Error response from daemon: ")
	return a
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
