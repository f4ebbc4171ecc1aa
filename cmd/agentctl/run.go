package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/agent/client"
)

// execHelperCommand is argv[1] of agentctl when it re-executes itself to
// enter a sandbox (see execHelper); it is not a command for users.
const execHelperCommand = "__exec-in-sandbox"

func runCommand() *cli.Command {
	flags := append(sandboxCreateFlags(),
		&cli.BoolFlag{Name: "rm", Usage: "remove the sandbox when CMD exits"})
	return &cli.Command{
		Name:         "run",
		Usage:        "Create a sandbox and run a command in it",
		ArgsUsage:    "NAME -- CMD [ARG...]",
		Description:  "Flags must come before NAME; all that follows NAME is the command.",
		Flags:        flags,
		Action:       withStatusAction(statusAgentctl, runSandbox),
		OnUsageError: usageErrorWithStatus(statusAgentctl),
	}
}

// splitCommand splits NAME [--] CMD [ARG...].
func splitCommand(args []string) (name string, argv []string) {
	if len(args) == 0 {
		return "", nil
	}
	name, argv = args[0], args[1:]
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	return name, argv
}

func sandboxExec(c *cli.Context) error {
	name, argv := splitCommand(c.Args().Slice())
	if len(argv) == 0 {
		return fmt.Errorf("%q requires at least 2 arguments", c.Command.HelpName)
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	return execIn(c, cl, name, argv)
}

func runSandbox(c *cli.Context) error {
	name, argv := splitCommand(c.Args().Slice())
	if len(argv) == 0 {
		return fmt.Errorf("%q requires at least 2 arguments", c.Command.HelpName)
	}
	req, err := sandboxCreateRequest(name, sandboxOptionsFrom(c))
	if err != nil {
		return err
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	ctx, cancel := callContext(c)
	resp, err := cl.SandboxCreate(ctx, req)
	cancel()
	if err != nil {
		return err
	}
	if resp.Warning != "" {
		fmt.Fprintf(c.App.ErrWriter, "WARNING: %s\n", oneLine(resp.Warning))
	}
	execErr := execIn(c, cl, resp.ID, argv)
	if !c.Bool("rm") {
		return execErr
	}

	// Clean up even when CMD failed or agentctl was interrupted.
	ctx, cancel = context.WithTimeout(context.WithoutCancel(c.Context), callTimeout)
	defer cancel()
	rmErr := cl.SandboxRemove(ctx, resp.ID, true)
	if rmErr == nil {
		return execErr
	}
	rmErr = fmt.Errorf("removing sandbox %q: %w", name, rmErr)
	var cmdStatus *exitError
	switch {
	case execErr == nil:
		return rmErr
	case errors.As(execErr, &cmdStatus) && cmdStatus.err == nil:
		// CMD failed: keep its status, and still say what went wrong.
		return &exitError{status: cmdStatus.status, err: rmErr}
	default:
		return errorList{execErr, rmErr}
	}
}

// execIn runs argv in the sandbox idOrName and returns nil or CMD's exit
// status as an exitError.
func execIn(c *cli.Context, cl *client.Client, idOrName string, argv []string) error {
	ctx, cancel := callContext(c)
	sb, err := cl.SandboxInspect(ctx, idOrName)
	cancel()
	if err != nil {
		return err
	}
	if sb.NetNS == "" {
		return fmt.Errorf("sandbox %q has no network namespace", sb.Name)
	}
	status, err := runInSandbox(sb.NetNS, etcDir(sb.Name), argv, c.App.Reader, c.App.Writer, c.App.ErrWriter)
	if err != nil {
		return err
	}
	if status != 0 {
		return &exitError{status: status}
	}
	return nil
}

// netnsEtc holds each sandbox's resolver files, as for ip netns exec (a
// variable for tests).
var netnsEtc = "/etc/netns"

// etcDir is where the sandbox's resolver files are: /etc/netns/NAME; ""
// when the name cannot be a directory name.
func etcDir(name string) string {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return ""
	}
	return filepath.Join(netnsEtc, name)
}
