package state

import (
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

type rec struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
}

func TestJSONBucket(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := JSONBucket[rec]{Name: []byte("things"), Kind: "thing", MaxVersion: 2, Version: func(r *rec) int { return r.Version }}
	if all, err := b.All(db); err != nil || len(all) != 0 {
		t.Fatalf("empty: %v %v", all, err)
	}
	if _, found, err := b.Get(db, "a"); found || err != nil {
		t.Fatalf("missing bucket: found %v err %v", found, err)
	}
	put := func(k, v string) {
		db.Update(func(tx *bolt.Tx) error {
			bk, _ := tx.CreateBucketIfNotExists(b.Name)
			return bk.Put([]byte(k), []byte(v))
		})
	}
	put("b", `{"version":1,"name":"bee"}`)
	put("a", `{"version":2,"name":"ay"}`)
	all, err := b.All(db)
	if err != nil || len(all) != 2 || all[0].Name != "ay" || all[1].Name != "bee" {
		t.Fatalf("all (key order): %+v %v", all, err)
	}
	if r, found, err := b.Get(db, "b"); !found || err != nil || r.Name != "bee" {
		t.Fatalf("get: %+v %v %v", r, found, err)
	}
	put("c", `{"version":3}`)
	if _, _, err := b.Get(db, "c"); err == nil || !strings.Contains(err.Error(), "thing record c has version 3") || !strings.Contains(err.Error(), "upgrade Berth") {
		t.Fatalf("newer record: %v", err)
	}
	put("c", `{not json`)
	if _, err := b.All(db); err == nil || !strings.Contains(err.Error(), "thing record c is corrupt") {
		t.Fatalf("corrupt record: %v", err)
	}
	if err := b.Delete(db, "c"); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(db, "d", rec{Version: 2, Name: "dee"}); err != nil {
		t.Fatal(err)
	}
	if r, found, err := b.Get(db, "d"); !found || err != nil || r.Name != "dee" {
		t.Fatalf("after put: %+v %v %v", r, found, err)
	}
	if err := b.Delete(db, "nosuch"); err != nil {
		t.Fatalf("delete of a missing key: %v", err)
	}
	if all, _ := b.All(db); len(all) != 3 {
		t.Fatalf("after delete and put: %+v", all)
	}
}
