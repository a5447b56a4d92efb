package state

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesSchemaAndRejectsNewer(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], SchemaVersion+1)
		return tx.Bucket(metaBucket).Put(schemaKey, buf[:])
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(p); err == nil {
		t.Fatal("opening a database from a newer Berth succeeded")
	}
}

func TestSecondOpenerGetsLockedError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}
}
