package api

import (
	"bytes"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/stdcopy"
)

// The multiplexed frames the server writes are what the client library's
// stdcopy demultiplexes, including writes larger than one frame.
func TestMuxWriterRoundTrip(t *testing.T) {
	var wire bytes.Buffer
	stdout, stderr := outputs(&wire, false, nil)
	big := strings.Repeat("x", 3<<20+5)
	stdout.Write([]byte("out1\n"))
	stderr.Write([]byte("err1\n"))
	stdout.Write([]byte(big))
	stderr.Write(nil)
	var o, e bytes.Buffer
	if _, err := stdcopy.StdCopy(&o, &e, &wire); err != nil {
		t.Fatal(err)
	}
	if o.String() != "out1\n"+big || e.String() != "err1\n" {
		t.Fatalf("stdout %d bytes, stderr %q", o.Len(), e.String())
	}

	// tty: one raw stream, no framing.
	wire.Reset()
	stdout, stderr = outputs(&wire, true, nil)
	stdout.Write([]byte("a"))
	stderr.Write([]byte("b"))
	if wire.String() != "ab" {
		t.Fatalf("tty stream %q", wire.String())
	}
}
