package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/kvstore/embedded"
)

// StoreServer is a real cluster-store server on loopback that a test can
// stop (an outage) and start again on the same address.
type StoreServer interface {
	// Name is the backend's name: "embedded", "etcd", "consul" or
	// "zookeeper".
	Name() string
	// Config is what a client needs to reach the server (endpoints,
	// credentials), with the default prefix.
	Config() kvstore.Config
	// Stop stops the server; etcd and ZooKeeper servers keep their data.
	Stop() error
	// Start starts it again on the same address and waits until it serves.
	Start(ctx context.Context) error
	// Close stops the server for good and removes its files.
	Close() error
}

// ConsulToken is the ACL management token of the test Consul server (ACLs
// are on, default deny, so that wrong credentials can be tested).
const ConsulToken = "5f0a5a36-7c1e-4c57-9a63-meshnet-test"

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	return ports, nil
}

// waitReady pings a client of cfg until it answers, the process exits or
// the deadline passes.
func waitReady(ctx context.Context, cfg kvstore.Config, exited <-chan struct{}) error {
	cfg.Timeout = time.Second
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last error
	for {
		if s, err := backends.Open(cfg); err == nil {
			last = kvstore.Ping(ctx, s)
			s.Close()
			if last == nil {
				return nil
			}
		} else {
			last = err
		}
		select {
		case <-exited:
			return errors.New("server exited while starting")
		case <-ctx.Done():
			return fmt.Errorf("server not ready: %w", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EmbeddedServer is an etcd server inside the test process.
type EmbeddedServer struct {
	cfg embedded.Config
	srv *embedded.Server
}

// StartEmbedded starts an embedded etcd server with data under dir.
//
// Its ports were free when picked; another server started at the same
// time may take one before etcd binds it, so a start that finds a port
// taken is tried again with new ones.
func StartEmbedded(ctx context.Context, dir string) (*EmbeddedServer, error) {
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		s := &EmbeddedServer{cfg: embedded.Config{
			Dir:       filepath.Join(dir, "etcd"),
			ClientURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
			PeerURL:   "http://127.0.0.1:" + strconv.Itoa(ports[1]),
		}}
		err = s.Start(ctx)
		if err == nil || attempt == 3 || !errors.Is(err, syscall.EADDRINUSE) {
			return s, err
		}
		os.RemoveAll(s.cfg.Dir)
	}
}

func (s *EmbeddedServer) Name() string { return "embedded" }

func (s *EmbeddedServer) Config() kvstore.Config {
	return kvstore.Config{Backend: kvstore.BackendEmbedded, Endpoints: []string{strings.TrimPrefix(s.cfg.ClientURL, "http://")},
		Prefix: kvstore.DefaultPrefix, Timeout: kvstore.DefaultTimeout}
}

func (s *EmbeddedServer) Start(ctx context.Context) (err error) {
	s.srv, err = embedded.Start(ctx, s.cfg)
	return err
}

func (s *EmbeddedServer) Stop() error {
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
	return nil
}

func (s *EmbeddedServer) Close() error {
	s.Stop()
	return os.RemoveAll(s.cfg.Dir)
}
