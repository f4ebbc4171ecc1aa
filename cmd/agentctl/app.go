package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/agent/client"
	"github.com/meshnet/meshnet/internal/mtls"
)

// callTimeout bounds each API call.
const callTimeout = 60 * time.Second

// Exit statuses of run and sandbox exec, as Docker's run and exec have
// them: agentctl's own failure, CMD found but not runnable, CMD not found.
// Every other command exits 1 on any error.
const (
	statusAgentctl      = 125
	statusCannotExecute = 126
	statusNotFound      = 127
)

const appDescription = `agentctl talks to the meshagent of this host (see --host).

Exit status: 0 on success, 1 on any error, which is printed on stderr as
one line "agentctl: MESSAGE". "run" and "sandbox exec" exit with the status
of their command, or 125 when agentctl itself failed, 126 when the command
cannot be run, 127 when it is not found.`

// newApp builds agentctl's command tree. Usage errors and unknown commands
// come back from Run as errors like every other error; nothing is printed
// by the library and nothing exits the process.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                      "agentctl",
		HelpName:                  "agentctl",
		Usage:                     "manage meshnet networks and sandboxes",
		Description:               appDescription,
		Version:                   version,
		EnableBashCompletion:      true,
		HideHelpCommand:           true,
		DisableSliceFlagSeparator: true,
		Reader:                    stdin,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "host",
				Aliases: []string{"H"},
				Value:   client.DefaultHost,
				EnvVars: []string{"MESHNET_HOST"},
				Usage:   "meshagent's API address: unix:///PATH or tcp://HOST:PORT",
			},
			&cli.BoolFlag{Name: "tlsverify", EnvVars: []string{"MESHNET_TLS_VERIFY"},
				Usage: "mutual TLS with the agent on tcp:// (files from MESHNET_CERT_PATH, default ~/.meshnet, unless given)"},
			&cli.StringFlag{Name: "tlscacert", Usage: "CA of the agent's certificate (default: MESHNET_CERT_PATH/ca.pem)"},
			&cli.StringFlag{Name: "tlscert", Usage: "this client's certificate (default: MESHNET_CERT_PATH/cert.pem)"},
			&cli.StringFlag{Name: "tlskey", Usage: "this client's key (default: MESHNET_CERT_PATH/key.pem)"},
		},
		Commands: []*cli.Command{
			networkCommand(),
			sandboxCommand(),
			runCommand(),
			nodeCommand(),
			clusterCommand(),
			infoCommand(),
			versionCommand(),
			completionCommand(),
		},
		Action:         groupAction,
		OnUsageError:   usageErrorWithStatus(1),
		ExitErrHandler: func(*cli.Context, error) {},
	}
	for _, c := range app.Commands {
		prepare(c)
	}
	return app
}

// prepare gives every command the same handling of help and usage errors.
func prepare(c *cli.Command) {
	c.HideHelpCommand = true
	if c.OnUsageError == nil {
		c.OnUsageError = usageErrorWithStatus(1)
	}
	if len(c.Subcommands) > 0 && c.Action == nil {
		c.Action = groupAction
	}
	for _, sub := range c.Subcommands {
		prepare(sub)
	}
}

// groupAction is the action of agentctl and of its commands that only
// group others: help without arguments, an error for an unknown command
// ("help COMMAND" has become "COMMAND --help" in helpTopic).
func groupAction(c *cli.Context) error {
	isRoot := c.Command.HelpName == c.App.HelpName
	if !c.Args().Present() {
		if isRoot {
			return cli.ShowAppHelp(c)
		}
		return cli.ShowSubcommandHelp(c)
	}
	return fmt.Errorf("unknown command %q for %q", c.Args().First(), c.Command.HelpName)
}

// usageErrorWithStatus returns an OnUsageError that turns the flag
// package's messages into agentctl's and gives them the exit status.
func usageErrorWithStatus(status int) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
			err = fmt.Errorf("unknown flag: %s", dashed(name))
		} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
			err = fmt.Errorf("flag needs an argument: %s", dashed(name))
		}
		return withStatus(status, err)
	}
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// Argument count checks, with Docker's messages.

func exactArgs(c *cli.Context, n int) error {
	if c.NArg() != n {
		return fmt.Errorf("%q requires exactly %d %s", c.Command.HelpName, n, arguments(n))
	}
	return nil
}

func minArgs(c *cli.Context, n int) error {
	if c.NArg() < n {
		return fmt.Errorf("%q requires at least %d %s", c.Command.HelpName, n, arguments(n))
	}
	return nil
}

func noArgs(c *cli.Context) error {
	if c.NArg() != 0 {
		return fmt.Errorf("%q accepts no arguments", c.Command.HelpName)
	}
	return nil
}

func arguments(n int) string {
	if n == 1 {
		return "argument"
	}
	return "arguments"
}

// connect returns a client of the agent named by --host.
// connect makes the client of -H: tcp:// with --tlsverify (mutual TLS,
// the only way meshagent serves tcp://), its files from --tlscacert,
// --tlscert and --tlskey, or MESHNET_CERT_PATH/{ca,cert,key}.pem.
func connect(c *cli.Context) (*client.Client, error) {
	host := c.String("host")
	if !c.Bool("tlsverify") {
		if strings.HasPrefix(host, "tcp://") {
			return nil, fmt.Errorf("%s needs --tlsverify (or MESHNET_TLS_VERIFY=1): meshagent serves tcp:// with mutual TLS only", host)
		}
		return client.New(host)
	}
	dir := os.Getenv("MESHNET_CERT_PATH")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".meshnet")
	}
	pick := func(flag, file string) string {
		if v := c.String(flag); v != "" {
			return v
		}
		return filepath.Join(dir, file)
	}
	t, err := mtls.Files{CA: pick("tlscacert", "ca.pem"), Cert: pick("tlscert", "cert.pem"), Key: pick("tlskey", "key.pem")}.Client()
	if err != nil {
		return nil, fmt.Errorf("--tlsverify: %w", err)
	}
	return client.NewTLS(host, t)
}

// callContext bounds one API call.
func callContext(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, callTimeout)
}

// forEachArg calls fn for each argument, each call with its own timeout,
// and goes on past errors (returned as an errorList) unless the agent
// cannot be reached at all.
func forEachArg(c *cli.Context, fn func(ctx context.Context, arg string) error) error {
	var errs errorList
	for _, arg := range c.Args().Slice() {
		ctx, cancel := callContext(c)
		err := fn(ctx, arg)
		cancel()
		if errors.Is(err, client.ErrUnreachable) {
			return err
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs.err()
}

// inspectEach fetches every argument and prints what it found (like
// docker inspect: the objects found, then one line per one not found). It
// stops at once if the agent cannot be reached.
func inspectEach[T any](c *cli.Context, cols columns[T], fetch func(context.Context, *client.Client, string) (T, error)) error {
	if err := minArgs(c, 1); err != nil {
		return err
	}
	format, err := formatOf(c)
	if err != nil {
		return err
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	var items []T
	err = forEachArg(c, func(ctx context.Context, name string) error {
		item, err := fetch(ctx, cl, name)
		if err == nil {
			items = append(items, item)
		}
		return err
	})
	if errors.Is(err, client.ErrUnreachable) {
		return err
	}
	if perr := printInspect(c.App.Writer, format, items, cols); perr != nil {
		return perr
	}
	return err
}

// removeEach removes every argument, printing the name of each one
// removed and going on past failures.
func removeEach(c *cli.Context, remove func(context.Context, *client.Client, string) error) error {
	if err := minArgs(c, 1); err != nil {
		return err
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	return forEachArg(c, func(ctx context.Context, name string) error {
		if err := remove(ctx, cl, name); err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, name)
		return nil
	})
}
