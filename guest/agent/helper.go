//go:build linux

package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// HelperName is argv[0] of the agent binary re-executed as the container
// process helper. Go cannot run code between fork and exec, so the agent
// starts itself under this name inside the new namespaces; the helper
// mounts /proc (it must be inside the new PID namespace to do that), enters
// the container root, takes on the user and execs the real program.
const HelperName = "berth-exec"

// Helper file descriptors: the spec comes in on 3, failures go out on 4 (a
// clean exec closes it, which the agent reads as success).
const (
	helperSpecFD = 3
	helperErrFD  = 4
)

type helperSpec struct {
	Root      string   `json:"root"`
	Args      []string `json:"args"`
	Env       []string `json:"env"`
	Cwd       string   `json:"cwd"`
	User      string   `json:"user"`
	Groups    []string `json:"groups"`
	Rlimits   []rlimit `json:"rlimits"`
	Hostname  string   `json:"hostname"`
	MountProc bool     `json:"mount_proc"`
	NoNewPriv bool     `json:"no_new_priv"`
}

type rlimit struct {
	Resource int    `json:"resource"`
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
}

// helper error classes, sent as "class:message" on helperErrFD.
const (
	errClassNotFound = "notfound" // the executable
	errClassInvalid  = "invalid"  // cwd, user, ...
	errClassInternal = "internal"
)

// HelperMain is main for HelperName. It never returns.
func HelperMain() {
	errf := os.NewFile(helperErrFD, "helper-err")
	fail := func(class string, err error) {
		fmt.Fprintf(errf, "%s:%v", class, err)
		os.Exit(127)
	}
	var spec helperSpec
	if err := json.NewDecoder(os.NewFile(helperSpecFD, "helper-spec")).Decode(&spec); err != nil {
		fail(errClassInternal, fmt.Errorf("reading the process spec: %w", err))
	}
	unix.Close(helperSpecFD)
	class, err := helperSetup(&spec)
	if err != nil {
		fail(class, err)
	}
	path, err := lookPath(spec.Args[0], spec.Env)
	if err != nil {
		fail(errClassNotFound, err)
	}
	unix.CloseOnExec(helperErrFD)
	err = unix.Exec(path, spec.Args, spec.Env)
	if errors.Is(err, unix.ENOENT) {
		fail(errClassNotFound, fmt.Errorf("exec %s: %w", spec.Args[0], err))
	}
	fail(errClassInvalid, fmt.Errorf("exec %s: %w", spec.Args[0], err))
}

func helperSetup(spec *helperSpec) (string, error) {
	if spec.MountProc {
		// A fresh mount namespace that shares the container root with the
		// agent's: /proc mounted here shows this PID namespace and
		// propagates to the agent's view (so exec'd processes see it too).
		// After that, nothing else propagates back.
		if err := unix.Mount("proc", filepath.Join(spec.Root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return errClassInternal, fmt.Errorf("mounting /proc in the container: %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			return errClassInternal, fmt.Errorf("making mounts private: %w", err)
		}
		if spec.Hostname != "" {
			if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
				return errClassInternal, fmt.Errorf("sethostname: %w", err)
			}
		}
	}
	if err := unix.Chroot(spec.Root); err != nil {
		return errClassInternal, fmt.Errorf("entering the container root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return errClassInternal, err
	}
	cred, home, err := resolveUser(spec.User, spec.Groups)
	if err != nil {
		return errClassInvalid, err
	}
	if !hasEnv(spec.Env, "HOME") {
		spec.Env = append(spec.Env, "HOME="+home)
	}
	if !hasEnv(spec.Env, "PATH") {
		spec.Env = append(spec.Env, "PATH="+defaultPath)
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	for _, rl := range spec.Rlimits {
		if err := unix.Setrlimit(rl.Resource, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return errClassInvalid, fmt.Errorf("rlimit %d: %w", rl.Resource, err)
		}
	}
	if err := syscall.Setgroups(cred.groups); err != nil {
		return errClassInternal, fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(int(cred.gid)); err != nil {
		return errClassInternal, fmt.Errorf("setgid %d: %w", cred.gid, err)
	}
	if err := syscall.Setuid(int(cred.uid)); err != nil {
		return errClassInternal, fmt.Errorf("setuid %d: %w", cred.uid, err)
	}
	// chdir as the user: a directory the user cannot enter is an error,
	// as with Docker.
	if err := unix.Chdir(cwd); err != nil {
		return errClassInvalid, fmt.Errorf("working directory %s: %w", cwd, err)
	}
	if spec.NoNewPriv {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return errClassInternal, fmt.Errorf("no_new_privs: %w", err)
		}
	}
	return "", nil
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}

func getEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds name on the container's PATH (we are inside its root).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return name, nil
	}
	p := getEnv(env, "PATH")
	for _, dir := range filepath.SplitList(p) {
		if dir == "" {
			dir = "."
		}
		c := filepath.Join(dir, name)
		if executable(c) == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("executable file not found in $PATH (%s): %s", p, name)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("permission denied (not executable)")
	}
	return nil
}

type credential struct {
	uid, gid uint32
	groups   []int
}

// resolveUser looks spec.User up in the container's /etc/passwd and
// /etc/group (Docker's rules: numeric ids need no entry; names must exist).
func resolveUser(user string, extra []string) (credential, string, error) {
	return resolveUserIn(user, extra, readColonFile("/etc/passwd"), readColonFile("/etc/group"))
}

func resolveUserIn(user string, extra []string, passwd, groups [][]string) (credential, string, error) {
	c := credential{}
	home := "/"
	name, group, hasGroup := strings.Cut(user, ":")
	if name == "" {
		name = "0"
	}
	if uid, err := strconv.ParseUint(name, 10, 32); err == nil {
		c.uid = uint32(uid)
		for _, e := range passwd {
			if len(e) >= 6 && e[2] == name {
				c.gid = parseU32(e[3])
				home = e[5]
				name = e[0]
				break
			}
		}
	} else {
		found := false
		for _, e := range passwd {
			if len(e) >= 6 && e[0] == name {
				c.uid, c.gid, home, found = parseU32(e[2]), parseU32(e[3]), e[5], true
				break
			}
		}
		if !found {
			return c, "", fmt.Errorf("unable to find user %s: no matching entries in the container's /etc/passwd", name)
		}
	}
	if hasGroup {
		gid, err := lookupGroup(groups, group)
		if err != nil {
			return c, "", err
		}
		c.gid = gid
	}
	c.groups = []int{int(c.gid)}
	// Supplementary groups the user is listed in.
	for _, e := range groups {
		if len(e) >= 4 {
			for _, m := range strings.Split(e[3], ",") {
				if m == name && m != "" {
					c.groups = append(c.groups, int(parseU32(e[2])))
				}
			}
		}
	}
	for _, g := range extra {
		gid, err := lookupGroup(groups, g)
		if err != nil {
			return c, "", err
		}
		c.groups = append(c.groups, int(gid))
	}
	if home == "" {
		home = "/"
	}
	return c, home, nil
}

func lookupGroup(groups [][]string, g string) (uint32, error) {
	if gid, err := strconv.ParseUint(g, 10, 32); err == nil {
		return uint32(gid), nil
	}
	for _, e := range groups {
		if len(e) >= 3 && e[0] == g {
			return parseU32(e[2]), nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in the container's /etc/group", g)
}

func parseU32(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

func readColonFile(p string) [][]string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	return parseColonFile(f)
}

// parseColonFile splits passwd/group style lines (image content: untrusted).
func parseColonFile(r io.Reader) [][]string {
	var out [][]string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}
