// Package image is Berth's OCI image store: content-addressed blobs on disk
// (blobs/sha256/<hex> under the data root's content dir) and image metadata
// in bbolt. It pulls from registries, loads and saves tarballs, tags, lists,
// inspects, removes and prunes, and hands the engine a v1.Image backed by
// local blobs for building root filesystems.
//
// Identity: an image is one platform-specific manifest; its key is the
// manifest digest. Tags (refs) point at manifest digests. The short "ID"
// shown to users is the config digest, as Docker shows it.
package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

// ErrNotFound is returned (wrapped) when a reference names no local image.
var ErrNotFound = errors.New("no such image")

// ErrInUse is returned (wrapped) by Remove when a container uses the image.
var ErrInUse = errors.New("image is in use by a container")

var (
	bucketImages = []byte("image.images") // manifest digest -> Record (JSON)
	bucketRefs   = []byte("image.refs")   // canonical ref (registry/repo:tag) -> manifest digest
)

// Store is the image store. Its methods are safe for concurrent use.
type Store struct {
	db    *state.DB
	blobs *blobStore

	// InUse reports whether a container uses the image with this manifest
	// digest; Remove refuses such images unless forced. The container
	// engine sets it; nil means nothing is in use.
	InUse func(manifestDigest v1.Hash) bool

	// Keychain finds registry credentials (default: ~/.docker/config.json
	// or $DOCKER_CONFIG, and credential helpers).
	Keychain authn.Keychain
	// Transport is the base HTTP transport for registries (default:
	// http.DefaultTransport). Plain HTTP is refused for non-loopback hosts.
	Transport http.RoundTripper
	// Jobs is the number of layers downloaded in parallel (default 4).
	Jobs int
	// MaxExpansion caps how far compressed input may expand (see
	// expansionLimit); zero means the default.
	MaxExpansion int64

	// gc is held shared by operations that add blobs before they are
	// referenced (pull, load) and exclusively by prune and remove, so a
	// sweep never deletes a blob that an in-flight pull is about to claim.
	gc sync.RWMutex

	bg syncer // background syncs of pulled blobs (durable.go)
	// syncBeforeCommit makes Pull wait for its blob syncs before recording
	// the image (benchmark comparison only).
	syncBeforeCommit bool
	// crashBeforeSync leaves journal entries as a crash before the
	// background sync would (crash-safety tests only).
	crashBeforeSync bool
}

// Record is what the store knows about one image (one platform manifest).
type Record struct {
	Digest      v1.Hash         `json:"digest"` // manifest digest: the image's identity
	MediaType   types.MediaType `json:"mediaType"`
	Config      v1.Hash         `json:"config"` // config digest: the user-visible image ID
	Platform    v1.Platform     `json:"platform"`
	Layers      []LayerRecord   `json:"layers"`
	Size        int64           `json:"size"` // manifest + config + layer blobs as stored
	Created     time.Time       `json:"created,omitempty"`
	Added       time.Time       `json:"added"`
	RepoDigests []string        `json:"repoDigests,omitempty"` // repo@digest as pulled (index digest for multi-platform)
	Source      string          `json:"source,omitempty"`      // where it came from: a ref or "load"/"import"
}

// LayerRecord is one layer of an image.
type LayerRecord struct {
	Digest    v1.Hash         `json:"digest"`
	DiffID    v1.Hash         `json:"diffID"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType"`
}

// ID is the short image ID (12 hex digits of the config digest), as Docker prints it.
func (r *Record) ID() string { return r.Config.Hex[:12] }

// New opens the store over db, with blobs under root's content dir. It
// removes temp files a crashed pull or load left in root's tmp dir (the
// database lock guarantees no other process is writing them now).
func New(db *state.DB, root dataroot.Root) (*Store, error) {
	s := &Store{
		db:    db,
		blobs: &blobStore{dir: filepath.Join(root.Content(), "blobs", "sha256"), tmp: root.Tmp()},
	}
	if err := os.MkdirAll(s.blobs.dir, 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if err := os.MkdirAll(root.Tmp(), 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if stale, _ := filepath.Glob(filepath.Join(root.Tmp(), tmpPrefix+"*")); len(stale) > 0 {
		for _, p := range stale {
			os.RemoveAll(p)
		}
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketRefs, bucketUnsynced} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if err := s.recoverUnsynced(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) keychain() authn.Keychain {
	if s.Keychain != nil {
		return s.Keychain
	}
	return authn.DefaultKeychain
}

func (s *Store) jobs() int {
	if s.Jobs > 0 {
		return s.Jobs
	}
	return 4
}

// DefaultPlatform is what pull and run use without --platform: linux on the
// host's CPU architecture (linux/arm64 on Apple silicon).
func DefaultPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: hostArch()}
}

// ParsePlatform parses "linux/arm64", "linux/arm/v7" or "arm64" (OS linux).
func ParsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return DefaultPlatform(), nil
	}
	if !strings.Contains(s, "/") {
		s = "linux/" + s
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: use os/arch[/variant], e.g. linux/arm64", s)
	}
	return *p, nil
}

// Image is a listed image: its record and its tags.
type Image struct {
	Record
	Tags []string // familiar names, e.g. busybox:latest, 127.0.0.1:5000/x:1
}

// List returns every image, newest first.
func (s *Store) List() ([]Image, error) {
	var out []Image
	err := s.db.View(func(tx *bolt.Tx) error {
		tags := map[string][]string{}
		tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
			tags[string(v)] = append(tags[string(v)], familiar(string(k)))
			return nil
		})
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("corrupt image record %s: %w", k, err)
			}
			t := tags[string(k)]
			sort.Strings(t)
			out = append(out, Image{Record: r, Tags: t})
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Added.After(out[j].Added) })
	return out, err
}

func getRecord(tx *bolt.Tx, d v1.Hash) (*Record, error) {
	v := tx.Bucket(bucketImages).Get([]byte(d.String()))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("corrupt image record %s: %w", d, err)
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, r *Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketImages).Put([]byte(r.Digest.String()), v)
}

// tagsOf returns the canonical refs pointing at d.
func tagsOf(tx *bolt.Tx, d v1.Hash) []string {
	var out []string
	tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
		if string(v) == d.String() {
			out = append(out, string(k))
		}
		return nil
	})
	return out
}

// addImage records img and points refs at it, in one transaction.
func (s *Store) addImage(r *Record, refs []string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if old, err := getRecord(tx, r.Digest); err == nil {
			// Same content again: keep the original date, merge provenance.
			r.Added = old.Added
			r.RepoDigests = mergeStrings(old.RepoDigests, r.RepoDigests)
		}
		if err := putRecord(tx, r); err != nil {
			return err
		}
		for _, ref := range refs {
			if err := tx.Bucket(bucketRefs).Put([]byte(ref), []byte(r.Digest.String())); err != nil {
				return err
			}
		}
		return nil
	})
}

func mergeStrings(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
