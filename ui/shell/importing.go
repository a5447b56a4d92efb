package shell

import (
	"context"

	"github.com/berth-dev/berth/ui/importer"
	"github.com/berth-dev/berth/ui/model"
)

// ImportAll imports a drop's accepted requests one after the other through
// the engine's Docker API, reporting progress per file, and returns one
// result each (in order). The image list is refreshed once at the end.
func (c *Controller) ImportAll(ctx context.Context, reqs []importer.Request, progress func(importer.Progress)) []importer.Result {
	out := make([]importer.Result, 0, len(reqs))
	for i, req := range reqs {
		var report func(done, total int64)
		if progress != nil {
			report = func(done, total int64) {
				progress(importer.Progress{File: req.Item.Path, Index: i + 1, Of: len(reqs), Done: done, Total: total})
			}
			report(0, req.Item.Size)
		}
		names, err := importer.Import(ctx, c.Client(), req, report)
		out = append(out, importer.Result{Path: req.Item.Path, Images: names, Err: err})
		if ctx.Err() != nil {
			break
		}
	}
	if len(reqs) > 0 {
		_ = c.refresh(ctx, model.Refresh{Images: true})
		c.changed()
	}
	return out
}
