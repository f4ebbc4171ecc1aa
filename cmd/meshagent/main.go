// Command meshagent is the meshnet daemon: one per host. Its configuration
// (file, flags, MESHNET_* environment) is described in docs/design.md §2 and
// `meshagent --help`.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/agent"
)

func main() {
	if err := agent.NewApp(run).Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "meshagent: %v\n", err)
		os.Exit(1)
	}
}

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: meshagent takes only flags", c.Args().First())
	}
	cfg, err := agent.ConfigFromCLI(c)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return a.Run(ctx)
}

func newLogger(cfg agent.Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
