// Package volume keeps Berth's named volumes: one directory per volume
// under the data root (<dataroot>/volumes/<name>/_data is what containers
// see, shared into their VMs over virtiofs) and one record per volume in the
// state database (created time, labels, driver "local", options).
//
// The record is written before the directory is made and deleted before the
// directory goes, so a crash leaves at worst a record without a directory
// (Open makes it again) or a directory without a record (Open removes it).
// Nothing is ever written outside the data root: names are checked against
// Docker's pattern before they become paths.
package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

// Driver is the only volume driver: a directory on the host.
const Driver = "local"

// AnonymousLabel marks a volume made for a container's unnamed -v /path;
// Docker uses the same label, and `volume prune` without --all removes only
// these.
const AnonymousLabel = "com.docker.volume.anonymous"

var bucket = []byte("volumes")

const recordVersion = 1

// Error classes, for errors.Is (the API maps them to 404, 409, 400).
var (
	ErrNotFound = errdefs.ErrNotFound
	ErrInUse    = errdefs.ErrConflict
	ErrInvalid  = errdefs.ErrInvalidArgument
)

// validName is Docker's rule for volume names; it also keeps names from
// being paths ("..", "/").
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// CheckName reports whether name can be a volume name, with a message that
// says what is allowed.
func CheckName(name string) error {
	if !validName.MatchString(name) || len(name) > 255 {
		return ErrInvalid.WithMessage(fmt.Sprintf("invalid volume name %q: use at least 2 characters from [a-zA-Z0-9_.-], starting with a letter or digit", name))
	}
	return nil
}

// Volume is one volume's record.
type Volume struct {
	Version   int               `json:"version"`
	Name      string            `json:"name"`
	Driver    string            `json:"driver"`
	CreatedAt time.Time         `json:"createdAt"`
	Labels    map[string]string `json:"labels,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
}

// Anonymous reports whether the volume was made for an unnamed -v /path.
func (v Volume) Anonymous() bool {
	_, ok := v.Labels[AnonymousLabel]
	return ok
}

// CreateOptions are docker volume create's settings.
type CreateOptions struct {
	Driver  string // "" or "local"
	Labels  map[string]string
	Options map[string]string // driver options: none are supported
}

// Store is the volume store of one engine.
type Store struct {
	db  *state.DB
	dir string // <dataroot>/volumes
	tmp string // scratch on the same filesystem, for atomic removal

	// InUse names the containers whose mounts use the volume (the
	// container manager); nil means none do.
	InUse func(name string) []string

	mu sync.Mutex // serializes create/remove of the same names
}

// Open opens the store and reconciles records and directories a crash may
// have left out of step.
func Open(db *state.DB, root dataroot.Root) (*Store, error) {
	s := &Store{db: db, dir: root.Volumes(), tmp: root.Tmp()}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	vols, err := s.all()
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, v := range vols {
		known[v.Name] = true
		if err := os.MkdirAll(s.Path(v.Name), 0o755); err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !known[e.Name()] {
			// A removal that was cut short: its record is already gone.
			os.RemoveAll(filepath.Join(s.dir, e.Name()))
		}
	}
	return s, nil
}

// Path is the host directory containers see for the volume.
func (s *Store) Path(name string) string { return filepath.Join(s.dir, name, "_data") }

// Create makes the volume, or returns the existing one of that name (as
// Docker does, so `docker volume create v` twice is fine). created says
// which happened.
func (s *Store) Create(name string, o CreateOptions) (v Volume, created bool, err error) {
	if err := CheckName(name); err != nil {
		return Volume{}, false, err
	}
	if o.Driver != "" && o.Driver != Driver {
		return Volume{}, false, errdefs.ErrNotImplemented.WithMessage(fmt.Sprintf("volume driver %q is not supported by Berth: only %q (a directory in the data root)", o.Driver, Driver))
	}
	if len(o.Options) > 0 {
		keys := make([]string, 0, len(o.Options))
		for k := range o.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return Volume{}, false, errdefs.ErrNotImplemented.WithMessage(fmt.Sprintf("volume driver options are not supported by Berth (%s): a volume is a plain directory", strings.Join(keys, ", ")))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, err := s.get(name); err == nil {
		// Docker keeps the first volume's labels; a different label set
		// for an existing name is a conflict only for other drivers.
		return old, false, os.MkdirAll(s.Path(name), 0o755)
	} else if !errors.Is(err, ErrNotFound) {
		return Volume{}, false, err
	}
	v = Volume{Version: recordVersion, Name: name, Driver: Driver, CreatedAt: time.Now().UTC(), Labels: o.Labels}
	if err := s.put(v); err != nil {
		return Volume{}, false, err
	}
	if err := os.MkdirAll(s.Path(name), 0o755); err != nil {
		s.del(name)
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	return v, true, nil
}

// Get returns the volume's record.
func (s *Store) Get(name string) (Volume, error) {
	if name == "" {
		return Volume{}, ErrNotFound.WithMessage("no such volume: empty name")
	}
	return s.get(name)
}

// Filters are docker volume ls's: name (substring), label (key or
// key=value), dangling (true: used by no container), driver.
type Filters map[string][]string

// List returns the volumes matching every filter term, sorted by name.
func (s *Store) List(f Filters) ([]Volume, error) {
	for k := range f {
		switch k {
		case "name", "label", "dangling", "driver":
		default:
			return nil, ErrInvalid.WithMessage(fmt.Sprintf("invalid filter %q for volumes (name, label, dangling, driver)", k))
		}
	}
	for _, d := range f["dangling"] {
		if _, err := parseBool(d); err != nil {
			return nil, err
		}
	}
	all, err := s.all()
	if err != nil {
		return nil, err
	}
	out := []Volume{}
	for _, v := range all {
		if s.matches(v, f) {
			out = append(out, v)
		}
	}
	return out, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, ErrInvalid.WithMessage(fmt.Sprintf("invalid filter value %q: use true or false", v))
}

func (s *Store) matches(v Volume, f Filters) bool {
	any := func(vals []string, ok func(string) bool) bool {
		if len(vals) == 0 {
			return true
		}
		for _, x := range vals {
			if ok(x) {
				return true
			}
		}
		return false
	}
	return any(f["name"], func(x string) bool { return strings.Contains(v.Name, x) }) &&
		any(f["driver"], func(x string) bool { return x == v.Driver }) &&
		any(f["dangling"], func(x string) bool { b, _ := parseBool(x); return b == (len(s.users(v.Name)) == 0) }) &&
		allLabels(v.Labels, f["label"])
}

// allLabels: every label term must match (Docker ANDs label filters).
func allLabels(labels map[string]string, terms []string) bool {
	for _, t := range terms {
		k, want, hasVal := strings.Cut(t, "=")
		got, ok := labels[k]
		if !ok || (hasVal && got != want) {
			return false
		}
	}
	return true
}

func (s *Store) users(name string) []string {
	if s.InUse == nil {
		return nil
	}
	return s.InUse(name)
}

// RefCount is how many containers use the volume.
func (s *Store) RefCount(name string) int { return len(s.users(name)) }

// Remove deletes the volume and its data. A volume a container uses (in any
// state) is refused, as by Docker, even with force; force only makes a
// missing volume no error.
func (s *Store) Remove(name string, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(name); err != nil {
		if force && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	if users := s.users(name); len(users) > 0 {
		short := make([]string, len(users))
		for i, u := range users {
			short[i] = u
			if len(u) == 64 { // a container ID: Docker's short form
				short[i] = u[:12]
			}
		}
		return ErrInUse.WithMessage(fmt.Sprintf("remove %s: volume is in use - [%s]: remove those containers first (docker rm)", name, strings.Join(short, ", ")))
	}
	return s.removeLocked(name)
}

// removeLocked: record first, then the directory, moved into scratch
// space in one rename so a half-deleted volume is never visible.
func (s *Store) removeLocked(name string) error {
	if err := s.del(name); err != nil {
		return err
	}
	if err := os.MkdirAll(s.tmp, 0o700); err != nil {
		return err
	}
	trash, err := os.MkdirTemp(s.tmp, "volume-rm-")
	if err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(s.dir, name), filepath.Join(trash, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return os.RemoveAll(trash)
}

// Prune removes unused volumes: only anonymous ones unless the filter
// all=true is given (Docker's rule since API 1.42), further narrowed by
// label filters (label=k[=v], label!=k[=v]). It reports what it removed
// and the bytes reclaimed.
func (s *Store) Prune(f Filters) (removed []string, reclaimed uint64, err error) {
	all := false
	for k, vals := range f {
		switch k {
		case "all":
			for _, v := range vals {
				b, err := parseBool(v)
				if err != nil {
					return nil, 0, err
				}
				all = all || b
			}
		case "label", "label!":
		default:
			return nil, 0, ErrInvalid.WithMessage(fmt.Sprintf("invalid filter %q for volume prune (all, label, label!)", k))
		}
	}
	vols, err := s.all()
	if err != nil {
		return nil, 0, err
	}
	removed = []string{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vols {
		if !all && !v.Anonymous() {
			continue
		}
		if !allLabels(v.Labels, f["label"]) {
			continue
		}
		excluded := false
		for _, t := range f["label!"] {
			if allLabels(v.Labels, []string{t}) {
				excluded = true
			}
		}
		if excluded || len(s.users(v.Name)) > 0 {
			continue
		}
		size := s.Size(v.Name)
		if err := s.removeLocked(v.Name); err != nil {
			return removed, reclaimed, err
		}
		removed = append(removed, v.Name)
		reclaimed += uint64(size)
	}
	return removed, reclaimed, nil
}

// Size is the bytes the volume's files take (apparent size).
func (s *Store) Size(name string) int64 {
	var n int64
	filepath.WalkDir(s.Path(name), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func (s *Store) get(name string) (Volume, error) {
	v, found, err := records.Get(s.db, name)
	if err != nil {
		return Volume{}, err
	}
	if !found {
		return Volume{}, ErrNotFound.WithMessage(fmt.Sprintf("no such volume: %s", name))
	}
	return v, nil
}

// records is the bucket's codec: versioned JSON, refused when newer.
var records = state.JSONBucket[Volume]{Name: bucket, Kind: "volume", MaxVersion: recordVersion, Version: func(v *Volume) int { return v.Version }}

func (s *Store) all() ([]Volume, error) { return records.All(s.db) }

func (s *Store) put(v Volume) error { return records.Put(s.db, v.Name, v) }

func (s *Store) del(name string) error { return records.Delete(s.db, name) }
