//go:build !linux

// The agent is PID 1 of a Linux VM; on other systems it only explains that.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "berth-agent runs inside Linux VMs: build it with GOOS=linux (make build)")
	os.Exit(2)
}
