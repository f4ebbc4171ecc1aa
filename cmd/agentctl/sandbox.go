package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/client"
)

func sandboxCommand() *cli.Command {
	return &cli.Command{
		Name:  "sandbox",
		Usage: "Manage sandboxes (network namespaces)",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "Create a sandbox: the network namespace /run/netns/NAME, or --netns",
				ArgsUsage: "NAME",
				Flags:     sandboxCreateFlags(),
				Action:    sandboxCreate,
			},
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "List sandboxes",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only print sandbox IDs"},
					&cli.BoolFlag{Name: "no-trunc", Usage: "do not truncate IDs"},
					formatFlag("the list"),
				},
				Action: sandboxList,
			},
			{
				Name:      "inspect",
				Usage:     "Show the details of sandboxes",
				ArgsUsage: "NAME...",
				Flags:     []cli.Flag{formatFlag("each sandbox (default: a JSON array)")},
				Action:    sandboxInspect,
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "Remove sandboxes",
				ArgsUsage: "NAME...",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove even if the agent would refuse"},
				},
				Action: sandboxRemove,
			},
			{
				Name:         "exec",
				Usage:        "Run a command in a sandbox, with its /etc/netns/NAME files over /etc",
				ArgsUsage:    "NAME -- CMD [ARG...]",
				Action:       withStatusAction(statusAgentctl, sandboxExec),
				OnUsageError: usageErrorWithStatus(statusAgentctl),
			},
		},
	}
}

// withStatusAction gives the errors of action the exit status.
func withStatusAction(status int, action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error { return withStatus(status, action(c)) }
}

func sandboxColumns(noTrunc bool) columns[api.Sandbox] {
	return columns[api.Sandbox]{
		header: []string{"SANDBOX ID", "NAME", "NETWORKS", "IP ADDRESSES"},
		row: func(s api.Sandbox) []string {
			id := s.ID
			if !noTrunc {
				id = shortID(id)
			}
			names := make([]string, 0, len(s.Networks))
			for name := range s.Networks {
				names = append(names, name)
			}
			sort.Strings(names)
			var addrs []string
			for _, name := range names {
				ep := s.Networks[name]
				for _, a := range []string{ep.IPAddress, ep.IPv6Address} {
					if a != "" {
						addrs = append(addrs, a)
					}
				}
			}
			return []string{id, s.Name, strings.Join(names, ","), strings.Join(addrs, ",")}
		},
	}
}

func sandboxCreate(c *cli.Context) error {
	if err := exactArgs(c, 1); err != nil {
		return err
	}
	req, err := sandboxCreateRequest(c.Args().First(), sandboxOptionsFrom(c))
	if err != nil {
		return err
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	ctx, cancel := callContext(c)
	defer cancel()
	resp, err := cl.SandboxCreate(ctx, req)
	if err != nil {
		return err
	}
	if resp.Warning != "" {
		fmt.Fprintf(c.App.ErrWriter, "WARNING: %s\n", oneLine(resp.Warning))
	}
	fmt.Fprintln(c.App.Writer, resp.ID)
	return nil
}

func sandboxList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
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
	ctx, cancel := callContext(c)
	defer cancel()
	sandboxes, err := cl.SandboxList(ctx)
	if err != nil {
		return err
	}
	sort.SliceStable(sandboxes, func(i, j int) bool { return sandboxes[i].Name < sandboxes[j].Name })
	cols := sandboxColumns(c.Bool("no-trunc"))
	if c.Bool("quiet") {
		for _, s := range sandboxes {
			fmt.Fprintln(c.App.Writer, cols.row(s)[0])
		}
		return nil
	}
	return printList(c.App.Writer, format, sandboxes, cols)
}

func sandboxInspect(c *cli.Context) error {
	return inspectEach(c, sandboxColumns(false), func(ctx context.Context, cl *client.Client, name string) (api.Sandbox, error) {
		return cl.SandboxInspect(ctx, name)
	})
}

func sandboxRemove(c *cli.Context) error {
	return removeEach(c, func(ctx context.Context, cl *client.Client, name string) error {
		return cl.SandboxRemove(ctx, name, c.Bool("force"))
	})
}
