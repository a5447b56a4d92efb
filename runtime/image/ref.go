package image

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
)

// ParseRef parses an image reference the way docker does (busybox ->
// index.docker.io/library/busybox:latest). Registries on loopback addresses
// are marked insecure, so they are spoken to over plain HTTP; every other
// registry only over HTTPS.
func ParseRef(s string) (name.Reference, error) {
	if strings.TrimSpace(s) != s || s == "" {
		return nil, fmt.Errorf("invalid image reference %q: empty or surrounded by spaces", s)
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %s", s, oneLine(err.Error()))
	}
	if isLoopback(ref.Context().RegistryStr()) {
		ref, err = name.ParseReference(s, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("invalid image reference %q: %s", s, oneLine(err.Error()))
		}
	}
	return ref, nil
}

// ParseTag parses a reference that must be a tag (for tag, import, load names).
func ParseTag(s string) (name.Tag, error) {
	ref, err := ParseRef(s)
	if err != nil {
		return name.Tag{}, err
	}
	t, ok := ref.(name.Tag)
	if !ok {
		return name.Tag{}, fmt.Errorf("invalid image name %q: a name:tag is needed here, not a digest", s)
	}
	return t, nil
}

// isLoopback reports whether host[:port] is localhost or a loopback IP.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// canonical is the key refs are stored under: registry/repo:tag.
func canonical(t name.Tag) string { return t.Name() }

// familiar shortens a canonical ref the way docker prints it.
func familiar(s string) string {
	s = strings.TrimPrefix(s, name.DefaultRegistry+"/library/")
	return strings.TrimPrefix(s, name.DefaultRegistry+"/")
}

// lookup finds the image s names: a tag, a repo@digest, a manifest digest,
// or an image ID (prefix of the config or manifest digest, >= 4 hex digits).
func lookup(tx *bolt.Tx, s string) (*Record, error) { return lookupFor(tx, s, nil) }

// lookupFor is lookup preferring plat (nil: the default platform) where a
// name stands for several platforms (an index digest).
func lookupFor(tx *bolt.Tx, s string, plat *v1.Platform) (*Record, error) {
	if id := strings.TrimPrefix(s, "sha256:"); isHexPrefix(id) {
		r, err := lookupID(tx, id)
		// A short hex string may also be a repository name: fall back to
		// the name lookup only when nothing matched by ID.
		if err == nil || strings.HasPrefix(s, "sha256:") || len(id) == 64 || !errors.Is(err, ErrNotFound) {
			return r, err
		}
	}
	ref, err := ParseRef(s)
	if err != nil {
		return nil, err
	}
	switch ref := ref.(type) {
	case name.Tag:
		v := tx.Bucket(bucketRefs).Get([]byte(canonical(ref)))
		if v == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, s)
		}
		d, err := v1.NewHash(string(v))
		if err != nil {
			return nil, fmt.Errorf("corrupt ref record %s: %w", s, err)
		}
		return getRecord(tx, d)
	case name.Digest:
		d, err := v1.NewHash(ref.DigestStr())
		if err != nil {
			return nil, fmt.Errorf("invalid digest in %q: %w", s, err)
		}
		r, err := getRecord(tx, d)
		if err == nil {
			return r, nil
		}
		// Pulled by an index digest: the stored manifests are the platform
		// ones; several platforms may have come from the same index.
		want := DefaultPlatform()
		if plat != nil {
			want = *plat
		}
		var found *Record
		tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			rec, err := getRecord(tx, mustHash(string(k)))
			if err != nil {
				return nil
			}
			for _, rd := range rec.RepoDigests {
				if strings.HasSuffix(rd, "@"+d.String()) && (found == nil || rec.Platform.Satisfies(want)) {
					found = rec
				}
			}
			return nil
		})
		if found != nil {
			return found, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrNotFound, s)
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, s)
}

func lookupID(tx *bolt.Tx, id string) (*Record, error) {
	var found []*Record
	err := tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
		r, err := getRecord(tx, mustHash(string(k)))
		if err != nil {
			return err
		}
		if strings.HasPrefix(r.Config.Hex, id) || strings.HasPrefix(r.Digest.Hex, id) {
			found = append(found, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("image ID %s is ambiguous (%d images match): give more digits", id, len(found))
}

func isHexPrefix(s string) bool {
	if len(s) < 4 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func mustHash(s string) v1.Hash {
	h, _ := v1.NewHash(s)
	return h
}

// oneLine folds a multi-line message (registry error bodies) into one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
