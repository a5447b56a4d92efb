package importer

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/runtime/image"
)

// SuggestName proposes an image name for a root filesystem tar from its
// file name: "Alpine Root.tar.gz" → "alpine-root:latest".
func SuggestName(p string) string {
	base := strings.ToLower(filepath.Base(p))
	for _, ext := range []string{".tar.gz", ".tar.zst", ".tar.zstd", ".tgz", ".tzst", ".tar", ".gz", ".zst"} {
		if strings.HasSuffix(base, ext) && len(base) > len(ext) {
			base = strings.TrimSuffix(base, ext)
			break
		}
	}
	var b strings.Builder
	dash := false
	for _, r := range base {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "imported"
	}
	return name + ":latest"
}

// ValidateName checks what the user typed as the new image's name and
// returns it trimmed. The rules are the image store's (a tag reference:
// lowercase repository, optional registry and :tag; no digest).
func ValidateName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("enter a name for the image, e.g. myimage:latest")
	}
	if strings.Contains(s, "@") {
		return "", fmt.Errorf("%q names a digest; give a name with an optional :tag, e.g. myimage:1.0", s)
	}
	if _, err := image.ParseTag(s); err != nil {
		return "", fmt.Errorf("%s; use lowercase letters, digits, '.', '_', '-' and '/', with an optional :tag", oneLine(err.Error()))
	}
	return s, nil
}
