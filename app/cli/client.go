package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// ErrNoEngine means no engine answers on the data root's socket.
var ErrNoEngine = errors.New("no Berth engine is running: start one with `berth daemon` (or open Berth.app)")

// EngineSocket is the engine's socket for this data root.
func (g *Globals) EngineSocket() (string, error) {
	root, err := g.Root()
	if err != nil {
		return "", err
	}
	return root.Socket(), nil
}

// EngineRunning reports whether an engine answers on the socket (a connect
// is enough: only a live engine listens there).
func (g *Globals) EngineRunning() bool {
	sock, err := g.EngineSocket()
	if err != nil {
		return false
	}
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Client returns a Docker Engine API client for the running engine (the
// same API the docker CLI uses), or ErrNoEngine. Callers Close it.
//
// Commands use it whenever an engine runs: only the engine opens state.db,
// so a CLI that found an engine must never touch the store directly.
func (g *Globals) Client() (*client.Client, error) {
	sock, err := g.EngineSocket()
	if err != nil {
		return nil, err
	}
	if !g.EngineRunning() {
		return nil, ErrNoEngine
	}
	return client.New(
		client.WithHost("unix://"+sock),
		client.WithAPIVersionNegotiation(),
		client.WithUserAgent("berth-cli/"+Version),
	)
}

// DecodeProgress reads a JSON progress stream (pull, load) and hands each
// message to fn; an error message inside the stream is returned as the
// error, so a failed pull fails the command.
func DecodeProgress(body io.Reader, fn func(jsonstream.Message)) error {
	dec := json.NewDecoder(body)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading progress from the engine: %w", err)
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
		if fn != nil {
			fn(m)
		}
	}
}

func dockerEnvLines(sock, shell string, unset bool) (string, error) {
	host := "unix://" + sock
	var b strings.Builder
	switch shell {
	case "", "sh", "bash", "zsh":
		if unset {
			b.WriteString("unset DOCKER_HOST\n")
		} else {
			fmt.Fprintf(&b, "export DOCKER_HOST=%s\n", shQuote(host))
		}
	case "fish":
		if unset {
			b.WriteString("set -e DOCKER_HOST;\n")
		} else {
			fmt.Fprintf(&b, "set -gx DOCKER_HOST %q;\n", host)
		}
	case "powershell", "pwsh":
		if unset {
			b.WriteString("Remove-Item Env:\\DOCKER_HOST\n")
		} else {
			fmt.Fprintf(&b, "$Env:DOCKER_HOST = %q\n", host)
		}
	default:
		return "", fmt.Errorf("--shell %q: use sh, bash, zsh, fish or powershell", shell)
	}
	if !unset {
		fmt.Fprintf(&b, "# Run this command to point docker at Berth in this shell:\n#   eval \"$(berth docker-env)\"\n")
		fmt.Fprintf(&b, "# Or, once for every shell, a docker context:\n#   docker context create berth --docker %s && docker context use berth\n", shQuote("host="+host))
		fmt.Fprintf(&b, "#   (or: berth context --use)\n")
	}
	return b.String(), nil
}

func init() {
	register(func(root *cobra.Command, g *Globals) {
		var shell string
		var unset bool
		envCmd := &cobra.Command{
			Use:   "docker-env",
			Short: "Print the shell commands that point the docker CLI at Berth",
			Long: "Prints `export DOCKER_HOST=unix://<data root>/berth.sock` (for eval) and how to create a\n" +
				"docker context instead. The docker CLI, compose and testcontainers then drive Berth's engine.",
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				sock, err := g.EngineSocket()
				if err != nil {
					return err
				}
				s, err := dockerEnvLines(sock, shell, unset)
				if err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), s)
				if !unset && !g.EngineRunning() {
					fmt.Fprintln(cmd.ErrOrStderr(), "berth: note: no engine is running yet; start one with `berth daemon`")
				}
				return nil
			},
		}
		envCmd.Flags().StringVar(&shell, "shell", "", "shell syntax: sh (default), bash, zsh, fish, powershell")
		envCmd.Flags().BoolVarP(&unset, "unset", "u", false, "print the commands that undo it")
		root.AddCommand(envCmd)

		var use bool
		var ctxName string
		ctxCmd := &cobra.Command{
			Use:   "context",
			Short: "Create (or update) a docker context named berth that points at Berth's engine",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				sock, err := g.EngineSocket()
				if err != nil {
					return err
				}
				docker, err := exec.LookPath("docker")
				if err != nil {
					return fmt.Errorf("the docker CLI is not installed (or not on PATH); install it, or use `eval \"$(berth docker-env)\"` with any Docker API client")
				}
				host := "host=unix://" + sock
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				defer cancel()
				verb := "create"
				if exec.CommandContext(ctx, docker, "context", "inspect", ctxName).Run() == nil {
					verb = "update"
				}
				run := func(a ...string) error {
					c := exec.CommandContext(ctx, docker, a...)
					c.Stdout, c.Stderr = cmd.ErrOrStderr(), cmd.ErrOrStderr()
					if err := c.Run(); err != nil {
						return fmt.Errorf("docker %s: %w", strings.Join(a, " "), err)
					}
					return nil
				}
				if err := run("context", verb, ctxName, "--description", "Berth: a VM per container", "--docker", host); err != nil {
					return err
				}
				if use {
					if err := run("context", "use", ctxName); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "docker now uses Berth (context %q); `docker context use default` switches back\n", ctxName)
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "docker context %q points at unix://%s\nuse it with: docker context use %s   (or: docker --context %s ...)\n", ctxName, sock, ctxName, ctxName)
				return nil
			},
		}
		ctxCmd.Flags().BoolVar(&use, "use", false, "also make it docker's current context")
		ctxCmd.Flags().StringVar(&ctxName, "name", "berth", "context name")
		root.AddCommand(ctxCmd)
	})
}

// shQuote quotes s for POSIX shells when it needs it (macOS data roots
// live under "Application Support").
func shQuote(s string) string {
	if !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
