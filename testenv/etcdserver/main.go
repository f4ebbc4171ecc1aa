// Command etcdserver is a standalone etcd server for meshnet's tests: the
// same embedded etcd the agent runs, in a process of its own, so tests can
// exercise the etcd backend against a server they can kill and restart.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshnet/meshnet/kvstore/embedded"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "etcdserver: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg embedded.Config
	flag.StringVar(&cfg.Name, "name", "etcd", "member name")
	flag.StringVar(&cfg.Dir, "data-dir", "", "data directory")
	flag.StringVar(&cfg.ClientURL, "client-url", "http://127.0.0.1:2379", "URL to serve clients on")
	flag.StringVar(&cfg.PeerURL, "peer-url", "http://127.0.0.1:2380", "URL to serve peers on")
	flag.StringVar(&cfg.CertFile, "cert", "", "server certificate (with -key and -client-ca: https:// client URL, client certificates only)")
	flag.StringVar(&cfg.KeyFile, "key", "", "server key")
	flag.StringVar(&cfg.ClientCAFile, "client-ca", "", "CA of the client certificates taken")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := embedded.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println("ready")
	select {
	case <-ctx.Done():
		return nil
	case err := <-srv.Err():
		return err
	}
}
