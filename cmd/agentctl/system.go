package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/agent/api"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:  "node",
		Usage: "Show the cluster's nodes",
		Subcommands: []*cli.Command{
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "List the cluster's members: state, address, networks",
				Flags:   []cli.Flag{formatFlag("the list")},
				Action:  nodeList,
			},
		},
	}
}

var nodeColumns = columns[api.Node]{
	header: []string{"NAME", "ADDRESS", "STATE", "NETWORKS"},
	row: func(n api.Node) []string {
		return []string{n.Name, n.Address, n.State, strings.Join(n.Networks, ",")}
	},
}

func nodeList(c *cli.Context) error {
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
	nodes, err := cl.NodeList(ctx)
	if err != nil {
		return err
	}
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return printList(c.App.Writer, format, nodes, nodeColumns)
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:   "info",
		Usage:  "Show the agent's node, cluster store and counts",
		Flags:  []cli.Flag{formatFlag("the information (default: one KEY: VALUE per line)")},
		Action: info,
	}
}

func info(c *cli.Context) error {
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
	in, err := cl.Info(ctx)
	if err != nil {
		return err
	}
	return printOne(c.App.Writer, format, in, func(w io.Writer) {
		printFields(w, "", [][2]string{
			{"Node", in.Node},
			{"Version", in.Version},
			{"Cluster Store", in.ClusterStore},
			{"Cluster Advertise", in.ClusterAdvertise},
			{"Store Status", in.StoreStatus},
			{"Data Dir", in.DataDir},
			{"Networks", fmt.Sprint(in.Networks)},
			{"Sandboxes", fmt.Sprint(in.Sandboxes)},
			{"Nodes", fmt.Sprint(in.Nodes)},
		})
		for _, warning := range in.Warnings {
			fmt.Fprintf(w, "WARNING: %s\n", warning)
		}
	})
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:   "version",
		Usage:  "Show the versions of agentctl and of the agent",
		Flags:  []cli.Flag{formatFlag("the versions (JSON: {\"Client\":…,\"Server\":…})")},
		Action: showVersion,
	}
}

// versions is what version shows; Server is nil when the agent did not
// answer.
type versions struct {
	Client api.VersionInfo
	Server *api.VersionInfo
}

func clientVersion() api.VersionInfo {
	v := api.VersionInfo{
		Version:    version,
		APIVersion: api.Version,
		GoVersion:  runtime.Version(),
		Os:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.GitCommit = s.Value
			}
		}
	}
	return v
}

func showVersion(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	format, err := formatOf(c)
	if err != nil {
		return err
	}
	v := versions{Client: clientVersion()}
	var serverErr error
	if cl, err := connect(c); err != nil {
		serverErr = err
	} else {
		ctx, cancel := callContext(c)
		sv, err := cl.Version(ctx)
		cancel()
		if err != nil {
			serverErr = err
		} else {
			v.Server = &sv
		}
	}
	// The client's version is shown even when the agent did not answer.
	if err := printOne(c.App.Writer, format, v, func(w io.Writer) {
		fmt.Fprintln(w, "Client:")
		printVersionInfo(w, v.Client)
		if v.Server != nil {
			fmt.Fprintln(w, "\nServer:")
			printVersionInfo(w, *v.Server)
		}
	}); err != nil {
		return err
	}
	return serverErr
}

func printVersionInfo(w io.Writer, v api.VersionInfo) {
	fields := [][2]string{
		{"Version", v.Version},
		{"API version", v.APIVersion},
		{"Go version", v.GoVersion},
		{"OS/Arch", v.Os + "/" + v.Arch},
	}
	if v.GitCommit != "" {
		fields = append(fields, [2]string{"Git commit", v.GitCommit})
	}
	printFields(w, " ", fields)
}

// printFields writes "KEY: VALUE" lines, values aligned.
func printFields(w io.Writer, indent string, fields [][2]string) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s%s:\t%s\n", indent, f[0], f[1])
	}
	tw.Flush()
}

// printOne writes one object: human-readable by default (or "table"),
// one line of JSON, or a Go template.
func printOne[T any](w io.Writer, format string, v T, human func(io.Writer)) error {
	switch format {
	case "", formatTable:
		human(w)
		return nil
	case formatJSON:
		return writeJSON(w, v, false)
	default:
		return printTemplate(w, format, []T{v})
	}
}
