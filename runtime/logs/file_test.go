package logs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func collect(t *testing.T, l *Log, o ReadOptions) []string {
	t.Helper()
	var out []string
	if err := l.Read(context.Background(), o, func(e Entry) error {
		out = append(out, e.Stream+":"+string(e.Line))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteReadJSONFile(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, errw := l.Writer("stdout"), l.Writer("stderr")
	fmt.Fprint(out, "one\ntw")
	fmt.Fprint(errw, "err1\n")
	fmt.Fprint(out, "o\nthree")
	out.Close()
	got := collect(t, l, ReadOptions{Tail: -1})
	want := []string{"stdout:one\n", "stderr:err1\n", "stdout:two\n", "stdout:three"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q want %q", got, want)
	}
	data, _ := os.ReadFile(l.Path())
	first := strings.SplitN(string(data), "\n", 2)[0]
	if !strings.HasPrefix(first, `{"log":"one\n","stream":"stdout","time":"`) {
		t.Fatalf("not Docker json-file format: %s", first)
	}
	if got := collect(t, l, ReadOptions{Tail: 2}); len(got) != 2 || got[1] != "stdout:three" {
		t.Fatalf("tail 2: %q", got)
	}
	if got := collect(t, l, ReadOptions{Tail: 0}); len(got) != 0 {
		t.Fatalf("tail 0: %q", got)
	}
}

func TestSinceUntil(t *testing.T) {
	l, _ := Open(t.TempDir(), Options{})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	l.nowFunc = func() time.Time { i++; return base.Add(time.Duration(i) * time.Second) }
	w := l.Writer("stdout")
	for n := 1; n <= 5; n++ {
		fmt.Fprintf(w, "%d\n", n)
	}
	got := collect(t, l, ReadOptions{Tail: -1, Since: base.Add(2 * time.Second), Until: base.Add(4 * time.Second)})
	if strings.Join(got, "") != "stdout:2\nstdout:3\nstdout:4\n" {
		t.Fatalf("since/until: %q", got)
	}
}

func TestRotationKeepsNewest(t *testing.T) {
	dir := t.TempDir()
	l, _ := Open(dir, Options{MaxSize: 1000, MaxFiles: 3})
	w := l.Writer("stdout")
	for n := 0; n < 200; n++ {
		fmt.Fprintf(w, "line %03d\n", n)
	}
	var total int64
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Fatalf("want 3 files, got %d", len(entries))
	}
	for _, e := range entries {
		st, _ := os.Stat(dir + "/" + e.Name())
		if st.Size() > 1000 {
			t.Fatalf("%s is %d bytes, over max-size", e.Name(), st.Size())
		}
		total += st.Size()
	}
	got := collect(t, l, ReadOptions{Tail: -1})
	if got[len(got)-1] != "stdout:line 199\n" {
		t.Fatalf("newest line lost: %q", got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order at %d: %q after %q", i, got[i], got[i-1])
		}
	}
	if len(got) < 20 {
		t.Fatalf("only %d lines kept", len(got))
	}
}

func TestLongLineSplit(t *testing.T) {
	l, _ := Open(t.TempDir(), Options{})
	w := l.Writer("stdout")
	w.Write([]byte(strings.Repeat("x", maxLine+10) + "\n"))
	got := collect(t, l, ReadOptions{Tail: -1})
	if len(got) != 2 || len(got[0]) != len("stdout:")+maxLine {
		t.Fatalf("long line split wrong: %d entries", len(got))
	}
}

func TestFollowUntilEnd(t *testing.T) {
	l, _ := Open(t.TempDir(), Options{MaxSize: 300, MaxFiles: 2})
	w := l.Writer("stdout")
	fmt.Fprint(w, "before\n")
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- l.Read(context.Background(), ReadOptions{Tail: -1, Follow: true}, func(e Entry) error {
			got <- string(e.Line)
			return nil
		})
	}()
	if s := <-got; s != "before\n" {
		t.Fatalf("first: %q", s)
	}
	for n := 0; n < 20; n++ { // crosses rotations while following
		fmt.Fprintf(w, "after %d\n", n)
	}
	for n := 0; n < 20; n++ {
		select {
		case s := <-got:
			if s != fmt.Sprintf("after %d\n", n) {
				t.Fatalf("follow %d: %q", n, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("follow stalled")
		}
	}
	l.End()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end after End")
	}
}

func TestTornLineSkipped(t *testing.T) {
	dir := t.TempDir()
	l, _ := Open(dir, Options{})
	fmt.Fprint(l.Writer("stdout"), "ok\n")
	f, _ := os.OpenFile(l.Path(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"log":"torn`)
	f.Close()
	if got := collect(t, l, ReadOptions{Tail: -1}); len(got) != 1 {
		t.Fatalf("%q", got)
	}
}

func TestParseOptions(t *testing.T) {
	o, err := ParseOptions(map[string]string{"max-size": "10m", "max-file": "5"})
	if err != nil || o.MaxSize != 10<<20 || o.MaxFiles != 5 {
		t.Fatalf("%+v %v", o, err)
	}
	for _, bad := range []map[string]string{{"max-size": "x"}, {"max-file": "0"}, {"compress": "true"}} {
		if _, err := ParseOptions(bad); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}
