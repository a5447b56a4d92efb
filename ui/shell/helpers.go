package shell

import (
	"strings"

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

func trimLoaded(s string) string {
	s = strings.TrimSpace(s)
	for _, p := range []string{"Loaded image: ", "Loaded image ID: "} {
		if strings.HasPrefix(s, p) {
			return strings.TrimPrefix(s, p)
		}
	}
	return ""
}

func joinComma(s []string) string { return strings.Join(s, ", ") }
