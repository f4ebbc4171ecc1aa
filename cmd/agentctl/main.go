// Command agentctl is the command line of meshagent: it manages networks
// and sandboxes through the agent's API (docs/design.md §2), and runs commands
// inside sandboxes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// version is agentctl's version, set at build time with
// -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run runs agentctl with args (args[0] is the program name) and returns its
// exit status. Every error ends up here and is printed on stderr as
// "agentctl: MESSAGE", one line per error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 1 && args[1] == execHelperCommand {
		return execHelper(args[2:], stderr)
	}
	app := newApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, interspersed(app, helpTopic(app, args)))
	return report(stderr, err)
}

// exitError gives an error its own exit status; a nil err means the status
// alone (a command run in a sandbox, which has said what it had to say).
type exitError struct {
	status int
	err    error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.status)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// withStatus gives err the exit status, unless it already has one.
func withStatus(status int, err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{status: status, err: err}
}

// report prints err on w and returns the exit status for it: 0 for nil,
// an exitError's own status, or 1.
func report(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	status := 1
	var ee *exitError
	if errors.As(err, &ee) {
		status = ee.status
		if err = ee.err; err == nil {
			return status
		}
	}
	for _, e := range flatten(err) {
		fmt.Fprintf(w, "agentctl: %s\n", oneLine(e.Error()))
	}
	return status
}

// errorList is the errors of a command that went on past each (rm and
// inspect of several objects); report prints one line for each.
type errorList []error

func (l errorList) Error() string {
	msgs := make([]string, len(l))
	for i, err := range l {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// err returns the list as an error, nil when empty.
func (l errorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// flatten lists the errors of an errorList, each on its own.
func flatten(err error) []error {
	var list errorList
	if errors.As(err, &list) {
		return list
	}
	return []error{err}
}

// oneLine keeps a message to one line whatever the server or a library said.
func oneLine(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
	var kept []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, " ")
}
