package main

import (
	"bufio"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/client"
)

func networkCommand() *cli.Command {
	return &cli.Command{
		Name:  "network",
		Usage: "Manage networks",
		Subcommands: []*cli.Command{
			networkCreateCommand(),
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "List networks",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only print network IDs"},
					&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "`KEY=VALUE` filter, such as name=multi or driver=overlay (repeatable)"},
					&cli.BoolFlag{Name: "no-trunc", Usage: "do not truncate IDs"},
					formatFlag("the list"),
				},
				Action: networkList,
			},
			{
				Name:      "inspect",
				Usage:     "Show the details of networks",
				ArgsUsage: "NETWORK...",
				Flags:     []cli.Flag{formatFlag("each network (default: a JSON array)")},
				Action:    networkInspect,
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "Remove networks",
				ArgsUsage: "NETWORK...",
				Action:    networkRemove,
			},
			{
				Name:  "prune",
				Usage: "Remove all networks that no sandbox uses",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
				},
				Action: networkPrune,
			},
			{
				Name:      "connect",
				Usage:     "Attach a sandbox to a network",
				ArgsUsage: "NETWORK SANDBOX",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "alias", Usage: "network-scoped `ALIAS` of the sandbox (repeatable)"},
					&cli.StringFlag{Name: "ip", Usage: "IPv4 address of the sandbox on the network"},
					&cli.StringFlag{Name: "ip6", Usage: "IPv6 address of the sandbox on the network"},
					&cli.StringSliceFlag{Name: "link", Usage: "`SANDBOX:ALIAS` link to another sandbox (repeatable)"},
				},
				Action: networkConnect,
			},
			{
				Name:      "disconnect",
				Usage:     "Detach a sandbox from a network",
				ArgsUsage: "NETWORK SANDBOX",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "force the sandbox off the network"},
				},
				Action: networkDisconnect,
			},
		},
	}
}

func networkColumns(noTrunc bool) columns[api.Network] {
	return columns[api.Network]{
		header: []string{"NETWORK ID", "NAME", "DRIVER", "SCOPE"},
		row: func(n api.Network) []string {
			id := n.ID
			if !noTrunc {
				id = shortID(id)
			}
			return []string{id, n.Name, n.Driver, n.Scope}
		},
	}
}

func networkList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	format, err := formatOf(c)
	if err != nil {
		return err
	}
	filters, err := parseFilters(c.StringSlice("filter"))
	if err != nil {
		return err
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	ctx, cancel := callContext(c)
	defer cancel()
	networks, err := cl.NetworkList(ctx, filters)
	if err != nil {
		return err
	}
	sort.SliceStable(networks, func(i, j int) bool { return networks[i].Name < networks[j].Name })
	if c.Bool("quiet") {
		for _, n := range networks {
			fmt.Fprintln(c.App.Writer, networkColumns(c.Bool("no-trunc")).row(n)[0])
		}
		return nil
	}
	return printList(c.App.Writer, format, networks, networkColumns(c.Bool("no-trunc")))
}

func networkInspect(c *cli.Context) error {
	return inspectEach(c, networkColumns(false), func(ctx context.Context, cl *client.Client, name string) (api.Network, error) {
		return cl.NetworkInspect(ctx, name)
	})
}

func networkRemove(c *cli.Context) error {
	return removeEach(c, func(ctx context.Context, cl *client.Client, name string) error {
		return cl.NetworkRemove(ctx, name)
	})
}

func networkPrune(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if !c.Bool("force") && !confirm(c, "WARNING! This will remove all custom networks not used by any sandbox.") {
		return nil
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	ctx, cancel := callContext(c)
	defer cancel()
	resp, err := cl.NetworkPrune(ctx)
	if err != nil {
		return err
	}
	if len(resp.NetworksDeleted) > 0 {
		fmt.Fprintln(c.App.Writer, "Deleted Networks:")
		for _, name := range resp.NetworksDeleted {
			fmt.Fprintln(c.App.Writer, name)
		}
	}
	return nil
}

// confirm asks the user on stdin whether to go on; only y or yes does.
func confirm(c *cli.Context, warning string) bool {
	fmt.Fprintf(c.App.Writer, "%s\nAre you sure you want to continue? [y/N] ", warning)
	answer, _ := bufio.NewReader(c.App.Reader).ReadString('\n')
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

func networkConnect(c *cli.Context) error {
	if err := exactArgs(c, 2); err != nil {
		return err
	}
	ip, ip6 := c.String("ip"), c.String("ip6")
	if err := checkAddr(ip, false); err != nil {
		return err
	}
	if err := checkAddr(ip6, true); err != nil {
		return err
	}
	links, err := parseLinks(c.StringSlice("link"))
	if err != nil {
		return err
	}
	req := api.NetworkConnect{Container: c.Args().Get(1)}
	aliases := c.StringSlice("alias")
	if ip != "" || ip6 != "" || len(aliases) > 0 || len(links) > 0 {
		req.EndpointConfig = &api.EndpointRequest{Aliases: aliases, Links: links}
		if ip != "" || ip6 != "" {
			req.EndpointConfig.IPAMConfig = &api.EndpointIPAMConfig{IPv4Address: ip, IPv6Address: ip6}
		}
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	ctx, cancel := callContext(c)
	defer cancel()
	return cl.NetworkConnect(ctx, c.Args().First(), req)
}

func networkDisconnect(c *cli.Context) error {
	if err := exactArgs(c, 2); err != nil {
		return err
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	ctx, cancel := callContext(c)
	defer cancel()
	return cl.NetworkDisconnect(ctx, c.Args().First(), api.NetworkDisconnect{
		Container: c.Args().Get(1),
		Force:     c.Bool("force"),
	})
}
