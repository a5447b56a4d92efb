package importer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

// FuzzSniff feeds arbitrary bytes (a dropped file is untrusted) to the
// classifier: it must never panic, and every refusal is one line.
func FuzzSniff(f *testing.F) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range []string{"oci-layout", "index.json", "blobs/sha256/ab"} {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
		tw.Write([]byte("{}"))
	}
	tw.Close()
	f.Add(b.Bytes())
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b.Bytes())
	zw.Close()
	f.Add(z.Bytes())
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0})
	f.Add([]byte("manifest.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, format, _, err := sniff(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if strings.Contains(err.Error(), "\n") || err.Error() == "" {
				t.Fatalf("refusal not one line: %q", err)
			}
			return
		}
		if k < Archive || k > Rootfs || format == "" {
			t.Fatalf("accepted as kind %d %q", k, format)
		}
	})
}
