package state

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// JSONBucket is a top-level bucket of versioned JSON records of one kind
// (networks, volumes): every record carries the version of the code that
// wrote it, and a record newer than this code can read is an error that
// says to upgrade, never a silent partial read.
type JSONBucket[T any] struct {
	Name       []byte
	Kind       string // names the records in errors: "network", "volume"
	MaxVersion int    // the newest record version this code reads
	Version    func(*T) int
}

// Get reads the record at key; found is false when there is none.
func (b JSONBucket[T]) Get(db *DB, key string) (v T, found bool, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b.Name)
		if bk == nil {
			return nil
		}
		data := bk.Get([]byte(key))
		if data == nil {
			return nil
		}
		found = true
		return b.decode(key, data, &v)
	})
	return v, found, err
}

// All reads every record, in key order.
func (b JSONBucket[T]) All(db *DB) ([]T, error) {
	var out []T
	err := db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b.Name)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, data []byte) error {
			var v T
			if err := b.decode(string(k), data, &v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	return out, err
}

func (b JSONBucket[T]) decode(key string, data []byte, v *T) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s record %s is corrupt: %w", b.Kind, key, err)
	}
	if got := b.Version(v); got > b.MaxVersion {
		return fmt.Errorf("%s record %s has version %d, newer than this Berth (%d): upgrade Berth", b.Kind, key, got, b.MaxVersion)
	}
	return nil
}

// Put writes v at key (creating the bucket on first use).
func (b JSONBucket[T]) Put(db *DB, key string, v T) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(b.Name)
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), data)
	})
}

// Delete removes the record at key; a missing one is no error.
func (b JSONBucket[T]) Delete(db *DB, key string) error {
	return db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b.Name)
		if bk == nil {
			return nil
		}
		return bk.Delete([]byte(key))
	})
}
