package shell

import (
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/jsonstream"

	"github.com/berth-dev/berth/ui/model"
)

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

func progressOf(p *jsonstream.Progress) model.LayerBytes {
	if p == nil {
		return model.LayerBytes{}
	}
	return model.LayerBytes{Current: p.Current, Total: p.Total}
}
