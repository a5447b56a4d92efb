package container

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/runtime/ext4"
)

// CommitOptions are docker commit's settings.
type CommitOptions struct {
	// Config, when set, is the request body: fields set there replace the
	// container's (Env and Labels are merged by key, ExposedPorts and
	// Volumes unioned), before Changes apply.
	Config *container.Config
	// Changes are Dockerfile instructions (--change).
	Changes []string
	Comment string
	// Store adds the image: the base image plus layer (an uncompressed
	// tar, read to its end while the container's disk is held still) with
	// the config given; it returns the new image's ID. Nothing may be
	// left behind when it fails.
	Store func(ctx context.Context, img CommitImage) (imageID string, err error)
}

// CommitImage is what Store receives.
type CommitImage struct {
	Base   string // the container's image: its manifest digest
	Arch   string
	Config container.Config
	Layer  io.Reader
}

// Commit makes an image of the container's changes (docker commit). The
// disk is read as for Diff: a running container is synced and frozen
// while its layer is written (Docker's pause=true; Berth needs the freeze
// for a consistent read whatever pause says).
func (m *Manager) Commit(ctx context.Context, ref string, opts CommitOptions) (string, error) {
	c, err := m.get(ref)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	cfg := commitConfig(c.rec.Config)
	base, arch := c.rec.ImageID, c.rec.Arch
	m.mu.Unlock()
	if opts.Config != nil {
		mergeCommitConfig(&cfg, opts.Config)
	}
	if err := ApplyChanges(&cfg, opts.Changes); err != nil {
		return "", err
	}
	var id string
	err = m.withDisks(ctx, c, func(b, cur *ext4.Reader) error {
		changes, err := diffTrees(b, cur)
		if err != nil {
			return err
		}
		pr, pw := io.Pipe()
		wrote := make(chan error, 1)
		go func() {
			err := writeLayer(cur, changes, pw)
			pw.CloseWithError(err)
			wrote <- err
		}()
		id, err = opts.Store(ctx, CommitImage{Base: base, Arch: arch, Config: cfg, Layer: pr})
		pr.CloseWithError(fmt.Errorf("commit ended"))
		if werr := <-wrote; err == nil && werr != nil {
			err = werr
		}
		return err
	})
	if err != nil {
		return "", err
	}
	extra := map[string]string{"imageID": id}
	if opts.Comment != "" {
		extra["comment"] = opts.Comment
	}
	m.emit(events.ActionCommit, c, extra)
	return id, nil
}

// commitConfig is the container's config as an image keeps it: what the
// process ran with, without the per-container parts (hostname, stdio).
func commitConfig(c container.Config) container.Config {
	out := container.Config{
		User:         c.User,
		Env:          slices.Clone(c.Env),
		Cmd:          slices.Clone(c.Cmd),
		Entrypoint:   slices.Clone(c.Entrypoint),
		WorkingDir:   c.WorkingDir,
		StopSignal:   c.StopSignal,
		OnBuild:      slices.Clone(c.OnBuild),
		Shell:        slices.Clone(c.Shell),
		Healthcheck:  c.Healthcheck,
		ArgsEscaped:  c.ArgsEscaped,
		StopTimeout:  c.StopTimeout,
		Labels:       map[string]string{},
		ExposedPorts: network.PortSet{},
		Volumes:      map[string]struct{}{},
	}
	for k, v := range c.Labels {
		out.Labels[k] = v
	}
	for k := range c.ExposedPorts {
		out.ExposedPorts[k] = struct{}{}
	}
	for k := range c.Volumes {
		out.Volumes[k] = struct{}{}
	}
	return out
}

// mergeCommitConfig lays the request's config over the container's.
func mergeCommitConfig(dst *container.Config, src *container.Config) {
	if src.User != "" {
		dst.User = src.User
	}
	if len(src.Cmd) > 0 {
		dst.Cmd = slices.Clone(src.Cmd)
	}
	if len(src.Entrypoint) > 0 {
		dst.Entrypoint = slices.Clone(src.Entrypoint)
	}
	if src.WorkingDir != "" {
		dst.WorkingDir = src.WorkingDir
	}
	if src.StopSignal != "" {
		dst.StopSignal = src.StopSignal
	}
	for _, kv := range src.Env {
		dst.Env = setEnv(dst.Env, kv)
	}
	for k, v := range src.Labels {
		dst.Labels[k] = v
	}
	for k := range src.ExposedPorts {
		dst.ExposedPorts[k] = struct{}{}
	}
	for k := range src.Volumes {
		dst.Volumes[k] = struct{}{}
	}
	if src.Healthcheck != nil {
		dst.Healthcheck = src.Healthcheck
	}
	if len(src.OnBuild) > 0 {
		dst.OnBuild = slices.Clone(src.OnBuild)
	}
}

// setEnv replaces KEY's entry in env (or appends kv).
func setEnv(env []string, kv string) []string {
	key, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			out := slices.Clone(env)
			out[i] = kv
			return out
		}
	}
	return append(slices.Clone(env), kv)
}

// commitInstructions are the Dockerfile instructions docker commit takes.
const commitInstructions = "CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or WORKDIR"

// ApplyChanges applies docker commit --change instructions to cfg. Each
// change is one Dockerfile instruction; exec (JSON array) and shell forms
// are parsed as a Dockerfile would. A bad one is an ErrInvalid naming it.
func ApplyChanges(cfg *container.Config, changes []string) error {
	cmdSet := false
	for _, ch := range changes {
		if err := applyChange(cfg, strings.TrimSpace(ch), &cmdSet); err != nil {
			return errf(ErrInvalid, "--change %q: %v", ch, err)
		}
	}
	return nil
}

func applyChange(cfg *container.Config, ch string, cmdSet *bool) error {
	if ch == "" {
		return fmt.Errorf("empty instruction: use one of %s", commitInstructions)
	}
	if strings.ContainsAny(ch, "\n\r") {
		return fmt.Errorf("one instruction per --change: pass several -c flags")
	}
	word, rest, _ := strings.Cut(ch, " ")
	if i := strings.IndexAny(word, "\t"); i >= 0 {
		word, rest = word[:i], word[i+1:]+" "+rest
	}
	rest = strings.TrimSpace(rest)
	instr := strings.ToUpper(word)
	needArg := func() error {
		if rest == "" {
			return fmt.Errorf("%s needs an argument", instr)
		}
		return nil
	}
	switch instr {
	case "CMD":
		if err := needArg(); err != nil {
			return err
		}
		cfg.Cmd = commandForm(rest, cfg.Shell)
		*cmdSet = true
	case "ENTRYPOINT":
		if err := needArg(); err != nil {
			return err
		}
		cfg.Entrypoint = commandForm(rest, cfg.Shell)
		// As in a Dockerfile: a new entrypoint drops the inherited command
		// unless a CMD came earlier in the same commit.
		if !*cmdSet {
			cfg.Cmd = nil
		}
	case "ENV", "LABEL":
		if err := needArg(); err != nil {
			return err
		}
		pairs, err := keyValues(rest)
		if err != nil {
			return fmt.Errorf("%s: %v", instr, err)
		}
		for _, kv := range pairs {
			if instr == "ENV" {
				cfg.Env = setEnv(cfg.Env, kv[0]+"="+kv[1])
			} else {
				if cfg.Labels == nil {
					cfg.Labels = map[string]string{}
				}
				cfg.Labels[kv[0]] = kv[1]
			}
		}
	case "WORKDIR":
		if err := needArg(); err != nil {
			return err
		}
		w, err := oneWord(rest)
		if err != nil {
			return fmt.Errorf("WORKDIR: %v", err)
		}
		if !path.IsAbs(w) {
			w = path.Join("/", cfg.WorkingDir, w)
		}
		cfg.WorkingDir = path.Clean(w)
	case "USER":
		if err := needArg(); err != nil {
			return err
		}
		u, err := oneWord(rest)
		if err != nil {
			return fmt.Errorf("USER: %v", err)
		}
		cfg.User = u
	case "STOPSIGNAL":
		if err := needArg(); err != nil {
			return err
		}
		s, err := oneWord(rest)
		if err != nil {
			return fmt.Errorf("STOPSIGNAL: %v", err)
		}
		if _, err := ParseSignal(s); err != nil {
			return fmt.Errorf("STOPSIGNAL: %v", err)
		}
		cfg.StopSignal = s
	case "EXPOSE":
		if err := needArg(); err != nil {
			return err
		}
		words, err := splitWords(rest)
		if err != nil {
			return fmt.Errorf("EXPOSE: %v", err)
		}
		for _, w := range words {
			ports, err := exposedPorts(w)
			if err != nil {
				return fmt.Errorf("EXPOSE: %v", err)
			}
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = network.PortSet{}
			}
			for _, p := range ports {
				cfg.ExposedPorts[p] = struct{}{}
			}
		}
	case "VOLUME":
		if err := needArg(); err != nil {
			return err
		}
		var vols []string
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				return fmt.Errorf("VOLUME: bad JSON array: %v", err)
			}
		} else {
			var err error
			if vols, err = splitWords(rest); err != nil {
				return fmt.Errorf("VOLUME: %v", err)
			}
		}
		for _, v := range vols {
			if v == "" {
				return fmt.Errorf("VOLUME: empty path")
			}
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v] = struct{}{}
		}
	default:
		return fmt.Errorf("%s is not a valid change for docker commit: use %s", word, commitInstructions)
	}
	return nil
}

// commandForm is CMD/ENTRYPOINT's argument: a JSON array of strings is the
// exec form; anything else runs through the shell.
func commandForm(rest string, shell []string) []string {
	if strings.HasPrefix(rest, "[") {
		var args []string
		if err := json.Unmarshal([]byte(rest), &args); err == nil {
			return args
		}
	}
	if len(shell) == 0 {
		shell = []string{"/bin/sh", "-c"}
	}
	return append(slices.Clone(shell), rest)
}

// splitWords splits on blanks, honouring "…" and '…' quotes and
// backslash escapes (as the Dockerfile parser does for ENV and LABEL).
func splitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote rune
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc = true
			inWord = true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote = r
			inWord = true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if esc {
		return nil, fmt.Errorf("trailing backslash")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// keyValues parses ENV/LABEL arguments: key=value pairs, or the legacy
// "key value with spaces" form when the first word has no "=".
func keyValues(rest string) ([][2]string, error) {
	first, after, _ := strings.Cut(rest, " ")
	if !strings.Contains(first, "=") {
		key := strings.TrimSpace(first)
		val := strings.TrimSpace(after)
		if val == "" {
			return nil, fmt.Errorf("%s has no value: use KEY=VALUE", key)
		}
		vals, err := splitWords(val)
		if err != nil {
			return nil, err
		}
		return [][2]string{{key, strings.Join(vals, " ")}}, nil
	}
	words, err := splitWords(rest)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE", w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func oneWord(rest string) (string, error) {
	words, err := splitWords(rest)
	if err != nil {
		return "", err
	}
	if len(words) != 1 || words[0] == "" {
		return "", fmt.Errorf("takes exactly one argument, got %d", len(words))
	}
	return words[0], nil
}

// exposedPorts parses "80", "80/udp" or a range "8000-8002/tcp".
func exposedPorts(w string) ([]network.Port, error) {
	num, proto, hasProto := strings.Cut(w, "/")
	if hasProto && proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("port %q: protocol must be tcp, udp or sctp", w)
	}
	if !hasProto {
		proto = "tcp"
	}
	lo, hi, isRange := strings.Cut(num, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || a == 0 {
		return nil, fmt.Errorf("port %q: not a port number (1-65535)", w)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
			return nil, fmt.Errorf("port range %q: use LOW-HIGH with LOW <= HIGH", w)
		}
		if b-a > 1024 {
			return nil, fmt.Errorf("port range %q spans more than 1024 ports", w)
		}
	}
	var out []network.Port
	for p := a; p <= b; p++ {
		port, err := network.ParsePort(strconv.FormatUint(p, 10) + "/" + proto)
		if err != nil {
			return nil, fmt.Errorf("port %q: %v", w, err)
		}
		out = append(out, port)
	}
	return out, nil
}

// writeLayer writes the changes as an image layer tar: added and changed
// entries whole (content, owner, mode, times, xattrs), deletions as OCI
// whiteouts (.wh.NAME). Hard links between files written in this layer
// stay links; a link to an unchanged file becomes a copy.
func writeLayer(rd *ext4.Reader, changes []change, w io.Writer) error {
	tw := tar.NewWriter(w)
	first := map[uint32]string{}
	buf := make([]byte, 1<<20)
	for _, ch := range changes {
		if ch.kind == container.ChangeDelete {
			dir, name := path.Split(ch.path)
			hdr := &tar.Header{Name: dir + ".wh." + name, Typeflag: tar.TypeReg, Mode: 0o600,
				ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("whiteout %s: %w", ch.path, err)
			}
			continue
		}
		e := ch.entry
		hdr := &tar.Header{
			Name: ch.path, Mode: int64(e.Mode.Perm()) | modeBitsOf(e.Mode),
			Uid: int(e.Uid), Gid: int(e.Gid),
			ModTime: e.Mtime, AccessTime: e.Atime, ChangeTime: e.Ctime,
			Format: tar.FormatPAX,
		}
		if len(e.Xattrs) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				hdr.PAXRecords["SCHILY.xattr."+k] = string(v)
			}
		}
		var body io.Reader
		switch t := e.Mode.Type(); {
		case e.Mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, ch.path+"/"
		case e.Mode.IsRegular():
			if p, ok := first[e.Ino]; ok && e.Nlink > 1 {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, p
				break
			}
			first[e.Ino] = ch.path
			hdr.Typeflag, hdr.Size = tar.TypeReg, e.Size
			r, err := rd.OpenFile(e)
			if err != nil {
				return fmt.Errorf("%s: %w", ch.path, err)
			}
			body = r
		case t == fs.ModeSymlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Link
		case t == fs.ModeDevice|fs.ModeCharDevice:
			hdr.Typeflag, hdr.Devmajor, hdr.Devminor = tar.TypeChar, int64(e.Major), int64(e.Minor)
		case t == fs.ModeDevice:
			hdr.Typeflag, hdr.Devmajor, hdr.Devminor = tar.TypeBlock, int64(e.Major), int64(e.Minor)
		case t == fs.ModeNamedPipe:
			hdr.Typeflag = tar.TypeFifo
		default:
			continue // sockets have no tar form (Docker drops them too)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", ch.path, err)
		}
		if body != nil {
			if _, err := io.CopyBuffer(tw, body, buf); err != nil {
				return fmt.Errorf("%s: %w", ch.path, err)
			}
		}
	}
	return tw.Close()
}
