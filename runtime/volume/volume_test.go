package volume

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/runtime/dataroot"
	"github.com/berth-dev/berth/runtime/state"
)

func open(t *testing.T) (*Store, dataroot.Root, *state.DB) {
	t.Helper()
	root, err := dataroot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(root.StateDB())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(db, root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root, db
}

func names(vs []Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func TestCreateGetListRemove(t *testing.T) {
	s, _, _ := open(t)
	v, created, err := s.Create("v1", CreateOptions{Labels: map[string]string{"app": "web"}})
	if err != nil || !created || v.Driver != "local" || v.CreatedAt.IsZero() {
		t.Fatalf("create: %+v %v %v", v, created, err)
	}
	if err := os.WriteFile(filepath.Join(s.Path("v1"), "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Docker: creating an existing name returns it, data and labels kept.
	v2, created, err := s.Create("v1", CreateOptions{})
	if err != nil || created || v2.Labels["app"] != "web" {
		t.Fatalf("second create: %+v %v %v", v2, created, err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Path("v1"), "f")); string(b) != "hello" {
		t.Fatalf("data lost by a second create: %q", b)
	}
	if _, _, err := s.Create("v2", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    Filters
		want []string
	}{
		{nil, []string{"v1", "v2"}},
		{Filters{"name": {"2"}}, []string{"v2"}},
		{Filters{"label": {"app=web"}}, []string{"v1"}},
		{Filters{"label": {"app=db"}}, nil},
		{Filters{"dangling": {"true"}}, []string{"v1", "v2"}},
		{Filters{"dangling": {"false"}}, nil},
	} {
		got, err := s.List(tc.f)
		if err != nil || !slices.Equal(names(got), tc.want) {
			t.Errorf("List(%v) = %v, %v; want %v", tc.f, names(got), err, tc.want)
		}
	}
	if _, err := s.List(Filters{"bogus": {"x"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown filter: %v", err)
	}
	if _, err := s.List(Filters{"dangling": {"maybe"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad dangling value: %v", err)
	}

	s.InUse = func(name string) []string {
		if name == "v1" {
			return []string{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
		}
		return nil
	}
	if got, _ := s.List(Filters{"dangling": {"false"}}); !slices.Equal(names(got), []string{"v1"}) {
		t.Errorf("dangling=false: %v", names(got))
	}
	for _, force := range []bool{false, true} {
		err := s.Remove("v1", force)
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "volume is in use - [0123456789ab]") {
			t.Fatalf("remove in-use (force %v): %v", force, err)
		}
	}
	if _, err := os.Stat(s.Path("v1")); err != nil {
		t.Fatalf("refused removal touched the data: %v", err)
	}
	s.InUse = nil
	if err := s.Remove("v1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(s.Path("v1"))); !os.IsNotExist(err) {
		t.Fatalf("volume directory left: %v", err)
	}
	if _, err := s.Get("v1"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no such volume: v1") {
		t.Fatalf("get removed: %v", err)
	}
	if err := s.Remove("v1", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove missing: %v", err)
	}
	if err := s.Remove("v1", true); err != nil {
		t.Fatalf("remove -f missing: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	s, root, _ := open(t)
	for _, name := range []string{"", "a", "../x", "a/b", "-x", ".x", "x y", "/abs", "x:y", strings.Repeat("a", 256)} {
		if _, _, err := s.Create(name, CreateOptions{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "invalid volume name") {
			t.Errorf("Create(%q): %v", name, err)
		}
	}
	if _, _, err := s.Create("ok", CreateOptions{Driver: "nfs"}); err == nil || !strings.Contains(err.Error(), `"nfs"`) {
		t.Errorf("other driver: %v", err)
	}
	if _, _, err := s.Create("ok", CreateOptions{Options: map[string]string{"type": "nfs"}}); err == nil || !strings.Contains(err.Error(), "type") {
		t.Errorf("driver options: %v", err)
	}
	// Nothing was written for any of them.
	if got, _ := s.List(nil); len(got) != 0 {
		t.Fatalf("bad creates left volumes: %v", names(got))
	}
	entries, _ := os.ReadDir(root.Volumes())
	if len(entries) != 0 {
		t.Fatalf("bad creates left directories: %v", entries)
	}
}

func TestPrune(t *testing.T) {
	s, _, _ := open(t)
	mk := func(name string, labels map[string]string) {
		if _, _, err := s.Create(name, CreateOptions{Labels: labels}); err != nil {
			t.Fatal(err)
		}
	}
	mk("named", nil)
	mk("anon1", map[string]string{AnonymousLabel: ""})
	mk("anon2", map[string]string{AnonymousLabel: "", "keep": "1"})
	mk("used", map[string]string{AnonymousLabel: ""})
	os.WriteFile(filepath.Join(s.Path("anon1"), "f"), make([]byte, 1000), 0o644)
	s.InUse = func(name string) []string {
		if name == "used" {
			return []string{"c1"}
		}
		return nil
	}
	got, reclaimed, err := s.Prune(Filters{"label!": {"keep"}})
	if err != nil || !slices.Equal(got, []string{"anon1"}) || reclaimed != 1000 {
		t.Fatalf("prune: %v %d %v", got, reclaimed, err)
	}
	got, _, err = s.Prune(Filters{"all": {"true"}})
	if err != nil || !slices.Equal(got, []string{"anon2", "named"}) {
		t.Fatalf("prune all: %v %v", got, err)
	}
	if left, _ := s.List(nil); !slices.Equal(names(left), []string{"used"}) {
		t.Fatalf("left: %v", names(left))
	}
	if _, _, err := s.Prune(Filters{"until": {"1h"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unsupported prune filter: %v", err)
	}
}

// A crash between the record and the directory is repaired at Open: a
// record without a directory gets one, a directory without a record goes.
func TestOpenReconciles(t *testing.T) {
	s, root, db := open(t)
	if _, _, err := s.Create("kept", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(root.Volumes(), "kept"))
	stray := filepath.Join(root.Volumes(), "stray", "_data")
	os.MkdirAll(stray, 0o755)
	s2, err := Open(db, root)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s2.Path("kept")); err != nil || !fi.IsDir() {
		t.Fatalf("record without directory not repaired: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(stray)); !os.IsNotExist(err) {
		t.Fatalf("directory without record left: %v", err)
	}
}
