//go:build linux

package agent

import (
	"strings"
	"testing"
)

func TestResolveUserIn(t *testing.T) {
	passwd := parseColonFile(strings.NewReader("root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000:app:/home/app:/bin/sh\nshort:x\n"))
	groups := parseColonFile(strings.NewReader("root:x:0:\nusers:x:100:app,other\napp:x:1000:\n"))
	for _, tc := range []struct {
		user      string
		extra     []string
		uid, gid  uint32
		groups    []int
		home, err string
	}{
		{user: "", uid: 0, gid: 0, groups: []int{0}, home: "/root"},
		{user: "app", uid: 1000, gid: 1000, groups: []int{1000, 100}, home: "/home/app"},
		{user: "app:users", uid: 1000, gid: 100, groups: []int{100, 100}, home: "/home/app"},
		{user: "1000", uid: 1000, gid: 1000, groups: []int{1000, 100}, home: "/home/app"},
		{user: "77:88", uid: 77, gid: 88, groups: []int{88}, home: "/"},
		{user: "root", extra: []string{"users", "5"}, uid: 0, gid: 0, groups: []int{0, 100, 5}, home: "/root"},
		{user: "nobody", err: "unable to find user nobody"},
		{user: "app:nogroup", err: "unable to find group nogroup"},
		{user: "root", extra: []string{"nogroup"}, err: "unable to find group nogroup"},
	} {
		c, home, err := resolveUserIn(tc.user, tc.extra, passwd, groups)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.user, err, tc.err)
			}
			continue
		}
		if err != nil || c.uid != tc.uid || c.gid != tc.gid || home != tc.home || len(c.groups) != len(tc.groups) {
			t.Errorf("%q: %+v %q %v", tc.user, c, home, err)
			continue
		}
		for i := range c.groups {
			if c.groups[i] != tc.groups[i] {
				t.Errorf("%q: groups %v want %v", tc.user, c.groups, tc.groups)
			}
		}
	}
}

func FuzzCleanInRoot(f *testing.F) {
	for _, s := range []string{"/", "", ".", "a/b", "/a/../b", "../x", "a//b/./c", "..", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := cleanInRoot(p)
		if err != nil {
			return
		}
		if strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(c, "/../") || strings.HasSuffix(c, "/..") {
			t.Fatalf("cleanInRoot(%q) = %q escapes", p, c)
		}
	})
}

func FuzzResolveUser(f *testing.F) {
	f.Add("app:users", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n", "users:x:100:app\n")
	f.Add("1000:1000", "", "")
	f.Add("::", ":::::\n", ":::\n")
	f.Fuzz(func(t *testing.T, user, passwd, group string) {
		resolveUserIn(user, []string{"0"}, parseColonFile(strings.NewReader(passwd)), parseColonFile(strings.NewReader(group)))
	})
}
