// Command testenv prepares and demonstrates meshnet's test environment:
// it builds the Consul server used by the tests and runs the demos that
// `make demo` shows.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := app().RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		os.Exit(1)
	}
}

func app() *cli.App {
	return &cli.App{
		Name:  "testenv",
		Usage: "prepare meshnet's test environment and run its demos",
		Commands: []*cli.Command{
			{
				Name:  "consul",
				Usage: "build the test Consul server from its Go module (cached) and print its path",
				Action: func(c *cli.Context) error {
					bin, err := testenv.ConsulBinary(c.Context)
					if err != nil {
						return err
					}
					fmt.Println(bin)
					return nil
				},
			},
			{
				Name:  "demo",
				Usage: "three namespace hosts running meshagent, an overlay network, and sandboxes talking across hosts",
				Action: func(c *cli.Context) error {
					return overlayDemo(c.Context, os.Stdout)
				},
			},
			{
				Name:  "kvdemo",
				Usage: "show three agents sharing an embedded etcd cluster store",
				Action: func(c *cli.Context) error {
					return kvDemo(c.Context, os.Stdout)
				},
			},
		},
	}
}
