package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/meshnet/meshnet/kvstore"
)

// ConsulServer is a Consul server: by default an agent in dev mode (a
// single in-memory server), or with ServerOptions.Persistent a single
// server keeping its data on disk. ACLs are on (management token
// ConsulToken) and the minimum session TTL is 1s so that TTL expiry can be
// tested quickly.
type ConsulServer struct {
	bin, dir string
	opts     ServerOptions
	ports    []int // http, server, serf lan, serf wan
	proc     *Process
}

// StartConsul builds (once, cached) and starts a Consul dev server on
// loopback; its log goes to dir/consul.log.
func StartConsul(ctx context.Context, dir string) (*ConsulServer, error) {
	return StartConsulWith(ctx, dir, ServerOptions{})
}

// StartConsulWith builds (once, cached) and starts a Consul server placed
// as opts say; its log goes to dir/consul.log.
func StartConsulWith(ctx context.Context, dir string, opts ServerOptions) (*ConsulServer, error) {
	bin, err := ConsulBinary(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := opts.ports(8500, 8300, 8301, 8302)
	if err != nil {
		return nil, err
	}
	s := &ConsulServer{bin: bin, dir: dir, opts: opts, ports: ports}
	return s, s.Start(ctx)
}

func (s *ConsulServer) Name() string { return "consul" }

// Addr is the HTTP API's HOST:PORT.
func (s *ConsulServer) Addr() string { return hostPort(s.opts.addr(), s.ports[0]) }

func (s *ConsulServer) Config() kvstore.Config {
	return s.opts.clientTLS(kvstore.Config{Backend: kvstore.BackendConsul, Endpoints: []string{s.Addr()},
		Prefix: kvstore.DefaultPrefix, Token: ConsulToken, Timeout: kvstore.DefaultTimeout,
		Dial: s.opts.dial()})
}

// Every test client connects from one address, so Consul's per-client
// connection limit (200 by default, meant for one agent per host) is
// raised for the test server. The update check is off: the test server
// talks to nothing but its clients. Raft runs at production speed (dev
// mode's), so that a persistent server elects itself in about a second.
const consulHCL = `
disable_update_check = true
performance { raft_multiplier = 1 }
session_ttl_min = "1s"
limits { http_max_conns_per_client = 4096 }
acl {
  enabled        = true
  default_policy = "deny"
  tokens { initial_management = "` + ConsulToken + `" }
}
`

func (s *ConsulServer) Start(ctx context.Context) (err error) {
	p := func(i int) string { return strconv.Itoa(s.ports[i]) }
	addr := s.opts.addr()
	args := []string{"agent", "-dev"}
	if s.opts.Persistent {
		args = []string{"agent", "-server", "-bootstrap-expect", "1",
			"-data-dir", filepath.Join(s.dir, "consul-data")}
	}
	args = append(args, "-log-level", "warn",
		"-bind", addr, "-client", addr, "-node", "meshnet-test",
		"-http-port", p(0), "-server-port", p(1), "-serf-lan-port", p(2), "-serf-wan-port", p(3),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-hcl", consulHCL)
	if t := s.opts.TLS; t != nil {
		// HTTPS on the HTTP port, plain HTTP off, client certificates of
		// the CA only.
		args[slices.Index(args, "-http-port")+1] = "-1"
		args = append(args, "-https-port", p(0), "-hcl", fmt.Sprintf(
			`tls { defaults { ca_file = %q cert_file = %q key_file = %q verify_incoming = true } }`,
			t.File("ca.pem"), t.File("server.pem"), t.File("server-key.pem")))
	}
	s.proc, err = StartProcess(s.bin, args,
		ProcessOptions{Log: filepath.Join(s.dir, "consul.log"), NS: s.opts.NS})
	if err != nil {
		return err
	}
	if err := waitReady(ctx, s.Config(), s.proc.Exited()); err != nil {
		s.Stop()
		return fmt.Errorf("consul server (log in %s): %w", s.dir, err)
	}
	return nil
}

func (s *ConsulServer) Stop() error {
	s.proc.Stop(10 * time.Second)
	s.proc = nil
	return nil
}

// Close stops the server and removes a persistent server's data.
func (s *ConsulServer) Close() error {
	s.Stop()
	return os.RemoveAll(filepath.Join(s.dir, "consul-data"))
}
