package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/client"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "Manage the cluster's trust: join tokens and the gossip key",
		Subcommands: []*cli.Command{
			{
				Name:  "join-token",
				Usage: "Print how another host joins this cluster (on the host serving the embedded store)",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "rotate", Usage: "replace the token first: the old one joins no one from now on"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print the token only"},
				},
				Action: joinToken,
			},
			{
				Name:   "rotate-gossip-key",
				Usage:  "Replace the cluster's gossip encryption key, without a partition (takes a few seconds)",
				Action: rotateGossipKey,
			},
		},
	}
}

// callAgent runs one call of a command that takes no arguments.
func callAgent(c *cli.Context, call func(context.Context, *client.Client) error) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	ctx, cancel := callContext(c)
	defer cancel()
	return call(ctx, cl)
}

func joinToken(c *cli.Context) error {
	var t api.JoinToken
	err := callAgent(c, func(ctx context.Context, cl *client.Client) (err error) {
		t, err = cl.JoinToken(ctx, c.Bool("rotate"))
		return err
	})
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("quiet") {
		fmt.Fprintln(w, t.Token)
		return nil
	}
	if c.Bool("rotate") {
		fmt.Fprintln(w, "The join token has been replaced; the old one joins no one from now on.")
	}
	fmt.Fprintf(w, "To add a host to this cluster, start meshagent there with:\n\n    --cluster-store %s --cluster-token %s\n\n", t.Store, t.Token)
	fmt.Fprintln(w, "(or cluster-token-file, or MESHNET_CLUSTER_TOKEN, so that the token does not show in the process list).")
	return nil
}

func rotateGossipKey(c *cli.Context) error {
	err := callAgent(c, func(ctx context.Context, cl *client.Client) error { return cl.RotateGossipKey(ctx) })
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, "The gossip key has been replaced on every host that reads the cluster store.")
	return nil
}
