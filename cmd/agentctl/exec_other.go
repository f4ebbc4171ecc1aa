//go:build !linux

package main

import (
	"errors"
	"fmt"
	"io"
)

var errExecUnsupported = errors.New("running commands in sandboxes needs Linux")

func runInSandbox(string, string, []string, io.Reader, io.Writer, io.Writer) (int, error) {
	return 0, errExecUnsupported
}

func execHelper(_ []string, stderr io.Writer) int {
	fmt.Fprintf(stderr, "agentctl: %s\n", errExecUnsupported)
	return statusAgentctl
}
