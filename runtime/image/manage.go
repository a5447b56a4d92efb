package image

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
)

// Tag points the name dst (name:tag) at the image src names.
func (s *Store) Tag(src, dst string) error {
	t, err := ParseTag(dst)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		rec, err := lookup(tx, src)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRefs).Put([]byte(canonical(t)), []byte(rec.Digest.String()))
	})
}

// RemoveResult says what Remove did, in docker's words.
type RemoveResult struct {
	Untagged []string // familiar names removed
	Deleted  []string // manifest digests of images deleted
}

// Remove untags or deletes the image ref names, like `docker rmi`: removing
// one of several tags only untags; removing the last tag, or naming the
// image by ID, deletes it and the blobs no other image uses. An image a
// container uses (InUse) is refused unless force.
func (s *Store) Remove(ref string, force bool) (*RemoveResult, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	res := &RemoveResult{}
	var deleted *Record
	// Ask InUse outside any transaction: the hook may read the database
	// itself, and a read inside bbolt's write transaction can deadlock.
	inUse := map[v1.Hash]bool{}
	if s.InUse != nil {
		var d v1.Hash
		s.db.View(func(tx *bolt.Tx) error {
			if rec, err := lookup(tx, ref); err == nil {
				d = rec.Digest
			}
			return nil
		})
		if d.Hex != "" {
			inUse[d] = s.InUse(d)
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		rec, err := lookup(tx, ref)
		if err != nil {
			return err
		}
		tags := tagsOf(tx, rec.Digest)
		byTag := ""
		if r, err := ParseRef(ref); err == nil {
			if t, ok := r.(name.Tag); ok && tx.Bucket(bucketRefs).Get([]byte(canonical(t))) != nil {
				byTag = canonical(t)
			}
		}
		if byTag != "" && len(tags) > 1 {
			res.Untagged = append(res.Untagged, familiar(byTag))
			return tx.Bucket(bucketRefs).Delete([]byte(byTag))
		}
		if byTag == "" && len(tags) > 1 && !force {
			var f []string
			for _, t := range tags {
				f = append(f, familiar(t))
			}
			return fmt.Errorf("image %s is tagged %s: remove the tags by name, or use -f", rec.ID(), strings.Join(f, ", "))
		}
		if !force && inUse[rec.Digest] {
			return fmt.Errorf("%w: %s (%s); remove the container first, or use -f", ErrInUse, ref, rec.ID())
		}
		for _, t := range tags {
			if err := tx.Bucket(bucketRefs).Delete([]byte(t)); err != nil {
				return err
			}
			res.Untagged = append(res.Untagged, familiar(t))
		}
		if err := tx.Bucket(bucketImages).Delete([]byte(rec.Digest.String())); err != nil {
			return err
		}
		res.Deleted = append(res.Deleted, rec.Digest.String())
		deleted = rec
		return nil
	})
	if err != nil {
		return nil, err
	}
	if deleted != nil {
		if _, err := s.sweep(); err != nil {
			return res, fmt.Errorf("image removed, but freeing its blobs failed: %w (run `berth image prune`)", err)
		}
	}
	return res, nil
}

// PruneResult says what Prune removed.
type PruneResult struct {
	Deleted   []string // manifest digests of images removed
	Blobs     int      // blobs removed
	Reclaimed int64    // bytes freed
}

// Prune removes untagged images (all unused images with all) that no
// container uses, then every blob no image references, including what
// interrupted pulls left behind.
func (s *Store) Prune(all bool) (*PruneResult, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	res := &PruneResult{}
	// Candidates first, then InUse outside any transaction (see Remove);
	// gc is held, so no image can appear or lose its blobs meanwhile.
	var del []string
	err := s.db.View(func(tx *bolt.Tx) error {
		tagged := map[string]bool{}
		tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
			tagged[string(v)] = true
			return nil
		})
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			if all || !tagged[string(k)] {
				del = append(del, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if s.InUse != nil {
		kept := del[:0]
		for _, k := range del {
			if !s.InUse(mustHash(k)) {
				kept = append(kept, k)
			}
		}
		del = kept
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, k := range del {
			if !all && len(tagsOf(tx, mustHash(k))) > 0 {
				continue // tagged meanwhile
			}
			for _, t := range tagsOf(tx, mustHash(k)) {
				tx.Bucket(bucketRefs).Delete([]byte(t))
			}
			if err := tx.Bucket(bucketImages).Delete([]byte(k)); err != nil {
				return err
			}
			res.Deleted = append(res.Deleted, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	n, freed, err := s.sweepCount()
	res.Blobs, res.Reclaimed = n, freed
	return res, err
}

func (s *Store) sweep() (int64, error) {
	_, freed, err := s.sweepCount()
	return freed, err
}

// sweepCount deletes blobs no image record references. Callers hold gc.
func (s *Store) sweepCount() (int, int64, error) {
	live := map[v1.Hash]bool{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			r, err := getRecord(tx, mustHash(string(k)))
			if err != nil {
				return err
			}
			live[r.Digest], live[r.Config] = true, true
			for _, l := range r.Layers {
				live[l.Digest] = true
			}
			return nil
		})
	})
	if err != nil {
		return 0, 0, err
	}
	all, err := s.blobs.list()
	if err != nil {
		return 0, 0, err
	}
	var n int
	var freed int64
	var errs []error
	for _, d := range all {
		if live[d] {
			continue
		}
		sz, _ := s.blobs.size(d)
		if err := s.blobs.remove(d); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
		freed += sz
	}
	return n, freed, errors.Join(errs...)
}
