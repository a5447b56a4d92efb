package model

import (
	"fmt"
	"sort"
)

// LayerBytes is one layer's download progress.
type LayerBytes struct{ Current, Total int64 }

// PullProgress aggregates a pull's per-layer messages into what the Images
// window's progress bar shows.
type PullProgress struct {
	Ref    string
	Status string // the last overall status line ("Status: Downloaded newer image …")
	layers map[string]layer
}

type layer struct {
	status string
	bytes  LayerBytes
}

// Update records one progress message (id "" = about the whole pull).
func (p *PullProgress) Update(id, status string, b LayerBytes) {
	if id == "" || id == p.Ref {
		p.Status = status
		return
	}
	if p.layers == nil {
		p.layers = map[string]layer{}
	}
	l := p.layers[id]
	l.status = status
	if b.Total > 0 {
		l.bytes = b
	}
	if status == "Download complete" || status == "Pull complete" || status == "Already exists" {
		l.bytes.Current = l.bytes.Total
	}
	p.layers[id] = l
}

// Fraction is the share of known bytes downloaded (0 when nothing is known).
func (p PullProgress) Fraction() float64 {
	var cur, tot int64
	for _, l := range p.layers {
		cur += min(l.bytes.Current, l.bytes.Total)
		tot += l.bytes.Total
	}
	if tot == 0 {
		return 0
	}
	return float64(cur) / float64(tot)
}

// Text is a one-line summary: "3 of 5 layers · 12.3 MB / 40 MB".
func (p PullProgress) Text() string {
	if len(p.layers) == 0 {
		if p.Status != "" {
			return p.Status
		}
		return "Pulling " + p.Ref + "…"
	}
	ids := make([]string, 0, len(p.layers))
	for id := range p.layers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	done := 0
	var cur, tot int64
	for _, id := range ids {
		l := p.layers[id]
		if l.status == "Pull complete" || l.status == "Already exists" {
			done++
		}
		cur += min(l.bytes.Current, l.bytes.Total)
		tot += l.bytes.Total
	}
	s := fmt.Sprintf("%d of %d layers", done, len(ids))
	if tot > 0 {
		s += " · " + FormatBytes(cur) + " / " + FormatBytes(tot)
	}
	return s
}
