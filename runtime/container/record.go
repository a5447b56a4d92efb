package container

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/container"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/runtime/portfwd"
	"github.com/berth-dev/berth/runtime/vmm"
)

// bucket holds one JSON record per container, keyed by ID.
var bucket = []byte("containers")

// recordVersion is bumped when record's meaning changes incompatibly.
const recordVersion = 1

// record is what survives an engine restart. It is written before every
// state transition is acted on.
type record struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Name    string    `json:"name"` // without the leading "/"
	Created time.Time `json:"created"`

	// Config is the merged config (image defaults + request) the process
	// runs with; HostConfig as requested.
	Config     container.Config     `json:"config"`
	HostConfig container.HostConfig `json:"hostConfig"`
	// ImageID is the image's manifest digest: the key of its rootfs
	// snapshot and of the image store's InUse hook. Docker shows the image
	// ID instead (the config digest), ImageConfigID; records written before
	// that field existed get it in Restore (see migrateImageConfigIDs).
	ImageID       string            `json:"imageId"`
	ImageConfigID string            `json:"imageConfigId,omitempty"`
	Arch          string            `json:"arch"`
	Kernel        string            `json:"kernel,omitempty"` // per-container override
	Path          string            `json:"path"`
	Args          []string          `json:"args"`
	CPUs          int               `json:"cpus"`
	MemoryMiB     int               `json:"memoryMiB"`
	Ports         []portfwd.Binding `json:"ports,omitempty"`
	// Mounts are the container's -v/--mount/--tmpfs mounts as asked for;
	// Shares and GuestMounts what they became for the VM (worked out
	// once, at create, so every start mounts the same).
	Mounts      []mountSpec  `json:"mounts,omitempty"`
	Shares      []vmm.Share  `json:"shares,omitempty"`
	GuestMounts []GuestMount `json:"guestMounts,omitempty"`
	// Networks are the user networks, in NIC order (eth1, eth2, …), with
	// the addresses the network store holds for this container.
	Networks []netAttachment `json:"networks,omitempty"`

	State        container.ContainerState `json:"state"`
	ExitCode     int                      `json:"exitCode"`
	Error        string                   `json:"error,omitempty"`
	StartedAt    time.Time                `json:"startedAt"`
	FinishedAt   time.Time                `json:"finishedAt"`
	VMPID        int                      `json:"vmPid,omitempty"` // host process running the VM
	GuestPID     int                      `json:"guestPid,omitempty"`
	IP           string                   `json:"ip,omitempty"`
	Gateway      string                   `json:"gateway,omitempty"`
	PrefixLen    int                      `json:"prefixLen,omitempty"`
	RestartCount int                      `json:"restartCount"`
	// HasBeenStarted: the restart policy only applies to containers that
	// ran once. ManuallyStopped: stopped by the user (unless-stopped).
	HasBeenStarted  bool `json:"hasBeenStarted"`
	ManuallyStopped bool `json:"manuallyStopped"`
}

// dockerImageID is the image ID Docker shows for the container (inspect's
// Image, ps's ImageID): the config digest, or the manifest digest for an
// old record whose image was gone before it could be migrated.
func (r *record) dockerImageID() string {
	if r.ImageConfigID != "" {
		return r.ImageConfigID
	}
	return r.ImageID
}

func (m *Manager) put(r *record) error {
	r.Version = recordVersion
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return m.cfg.DB.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(r.ID), data)
	})
}

func (m *Manager) del(id string) error {
	return m.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(id))
	})
}

func (m *Manager) loadAll() ([]*record, error) {
	var out []*record
	err := m.cfg.DB.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			r := new(record)
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("container record %s is corrupt: %w", k, err)
			}
			if r.Version > recordVersion {
				return fmt.Errorf("container record %s has version %d, newer than this Berth (%d): upgrade Berth", k, r.Version, recordVersion)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}
