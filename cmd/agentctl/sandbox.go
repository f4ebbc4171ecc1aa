package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
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
				Name:      "port",
				Usage:     "List the published ports of a sandbox, or the host side of one",
				ArgsUsage: "NAME [PORT[/PROTO]]",
				Action:    sandboxPort,
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

// withContainerColumn adds the CNI container id, shown when some sandbox
// was made by the CNI plugin.
func withContainerColumn(cols columns[api.Sandbox], noTrunc bool) columns[api.Sandbox] {
	row := cols.row
	cols.header = append(slices.Clone(cols.header), "CONTAINER ID")
	cols.row = func(s api.Sandbox) []string {
		id := s.ContainerID
		if !noTrunc && len(id) > 12 {
			id = id[:12]
		}
		return append(row(s), id)
	}
	return cols
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
	if slices.ContainsFunc(sandboxes, func(s api.Sandbox) bool { return s.ContainerID != "" }) {
		cols = withContainerColumn(cols, c.Bool("no-trunc"))
	}
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

// sandboxPort prints a sandbox's published ports as `docker port` does:
// "80/tcp -> 0.0.0.0:8080", or for one port only the host sides.
func sandboxPort(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return fmt.Errorf("%q requires 1 or 2 arguments", c.Command.HelpName)
	}
	want := ""
	if c.NArg() == 2 {
		want = c.Args().Get(1)
		port, proto, found := strings.Cut(want, "/")
		if !found {
			proto = "tcp"
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || (proto != "tcp" && proto != "udp") {
			return fmt.Errorf("invalid port %q: use PORT[/tcp|udp]", want)
		}
		want = port + "/" + proto
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	ctx, cancel := callContext(c)
	defer cancel()
	s, err := cl.SandboxInspect(ctx, c.Args().First())
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(s.Ports))
	for k := range s.Ports {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return portLess(keys[i], keys[j]) })
	found := false
	for _, k := range keys {
		if want != "" && k != want {
			continue
		}
		for _, b := range s.Ports[k] {
			found = true
			host := net.JoinHostPort(b.HostIP, b.HostPort)
			if want != "" {
				fmt.Fprintln(c.App.Writer, host)
			} else {
				fmt.Fprintf(c.App.Writer, "%s -> %s\n", k, host)
			}
		}
	}
	if want != "" && !found {
		return fmt.Errorf("no public port '%s' published for %s", want, s.Name)
	}
	return nil
}

// portLess orders "PORT/PROTO" keys by port, then protocol.
func portLess(a, b string) bool {
	pa, qa, _ := strings.Cut(a, "/")
	pb, qb, _ := strings.Cut(b, "/")
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na != nb {
		return na < nb
	}
	return qa < qb
}
