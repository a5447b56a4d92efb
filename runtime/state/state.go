// Package state opens Berth's bbolt database and guards its schema version.
//
// One process (the engine) owns state.db: bbolt takes an exclusive lock, and a
// second opener would block, so Open uses a short timeout and turns the wait
// into an error that says an engine is already running.
package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is bumped whenever a bucket's record format changes in a way
// older code cannot read. Migrations run in Open.
const SchemaVersion = 1

var metaBucket = []byte("meta")
var schemaKey = []byte("schema")

// ErrLocked means another process holds the database.
var ErrLocked = errors.New("the state database is in use by another Berth process (is `berth daemon` or Berth.app running?)")

// DB is the engine's database. Subsystems keep their records in their own
// top-level buckets (images, containers, …) and use Update/View directly.
type DB struct{ *bolt.DB }

// Open opens (creating if needed) the database at path.
func Open(path string) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	db := &DB{b}
	if err := db.checkSchema(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) checkSchema() error {
	return db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		v := m.Get(schemaKey)
		if v == nil {
			var buf [8]byte
			binary.BigEndian.PutUint64(buf[:], SchemaVersion)
			return m.Put(schemaKey, buf[:])
		}
		if len(v) != 8 {
			return fmt.Errorf("state database has a corrupt schema record; move it aside and restart")
		}
		if got := binary.BigEndian.Uint64(v); got > SchemaVersion {
			return fmt.Errorf("state database has schema %d, newer than this Berth understands (%d): upgrade Berth", got, SchemaVersion)
		}
		return nil
	})
}
