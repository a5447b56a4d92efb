// Package cli is berth's command line: a cobra tree whose commands are
// registered by the files of this package, one file per area (images,
// containers, rootfs, daemon, …).
package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/runtime/dataroot"
)

// Version is set at link time (-X).
var Version = "dev"

// Globals are the flags every command shares.
type Globals struct {
	DataRoot string // --data-root, else $BERTH_DATA_ROOT, else the platform default
}

// Root resolves and creates the data root.
func (g *Globals) Root() (dataroot.Root, error) {
	dir, err := dataroot.Resolve(g.DataRoot)
	if err != nil {
		return dataroot.Root{}, err
	}
	return dataroot.Open(dir)
}

// registrars add commands to the root; each area's file appends one in init.
var registrars []func(root *cobra.Command, g *Globals)

func register(f func(root *cobra.Command, g *Globals)) { registrars = append(registrars, f) }

// NewRoot builds the whole command tree.
func NewRoot() *cobra.Command {
	g := &Globals{}
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Run Linux containers, each in its own lightweight VM",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.DataRoot, "data-root", "", "Berth's data directory (env "+dataroot.EnvVar+")")
	for _, r := range registrars {
		r(root, g)
	}
	return root
}

// ExitError carries a process exit status (for `berth run`, the container's)
// without an error message of its own.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Main runs the CLI and returns the process exit status. Errors are printed
// as one line on stderr.
func Main(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintln(os.Stderr, "berth: "+err.Error())
	return 1
}
