package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
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
	// Name is the backend's name: "embedded", "etcd" or "consul".
	Name() string
	// Config is what a client needs to reach the server (endpoints,
	// credentials), with the default prefix.
	Config() kvstore.Config
	// Stop stops the server; etcd servers keep their data.
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
func StartEmbedded(ctx context.Context, dir string) (*EmbeddedServer, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &EmbeddedServer{cfg: embedded.Config{
		Dir:       filepath.Join(dir, "etcd"),
		ClientURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		PeerURL:   "http://127.0.0.1:" + strconv.Itoa(ports[1]),
	}}
	return s, s.Start(ctx)
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

// process is a server child process. It is killed if the test binary
// dies (Pdeathsig) and stopped by PID otherwise.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startProcess(bin string, args []string, logPath string) (*process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL after a grace period, and waits.
func (p *process) stop() {
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// EtcdProcess is an etcd server in a process of its own
// (testenv/etcdserver).
type EtcdProcess struct {
	bin, dir           string
	clientURL, peerURL string
	proc               *process
}

// StartEtcdProcess builds and starts an etcd server process with data
// under dir.
func StartEtcdProcess(ctx context.Context, dir string) (*EtcdProcess, error) {
	bin, err := EtcdServerBinary(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &EtcdProcess{bin: bin, dir: dir,
		clientURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		peerURL:   "http://127.0.0.1:" + strconv.Itoa(ports[1])}
	return s, s.Start(ctx)
}

func (s *EtcdProcess) Name() string { return "etcd" }

func (s *EtcdProcess) Config() kvstore.Config {
	return kvstore.Config{Backend: kvstore.BackendEtcd, Endpoints: []string{strings.TrimPrefix(s.clientURL, "http://")},
		Prefix: kvstore.DefaultPrefix, Timeout: kvstore.DefaultTimeout}
}

func (s *EtcdProcess) Start(ctx context.Context) (err error) {
	s.proc, err = startProcess(s.bin, []string{"-data-dir", filepath.Join(s.dir, "etcd"),
		"-client-url", s.clientURL, "-peer-url", s.peerURL}, filepath.Join(s.dir, "etcd.log"))
	if err != nil {
		return err
	}
	if err := waitReady(ctx, s.Config(), s.proc.exited); err != nil {
		s.Stop()
		return fmt.Errorf("etcd server process (log in %s): %w", s.dir, err)
	}
	return nil
}

func (s *EtcdProcess) Stop() error {
	s.proc.stop()
	s.proc = nil
	return nil
}

func (s *EtcdProcess) Close() error {
	s.Stop()
	return os.RemoveAll(filepath.Join(s.dir, "etcd"))
}

// ConsulServer is a Consul agent in dev mode (a single in-memory server)
// on loopback, with ACLs on (management token ConsulToken) and a 1s
// minimum session TTL so that TTL expiry can be tested quickly.
type ConsulServer struct {
	bin, dir string
	ports    []int // http, server, serf lan, serf wan
	proc     *process
}

// StartConsul builds (once, cached) and starts a Consul dev server; its
// log goes to dir/consul.log.
func StartConsul(ctx context.Context, dir string) (*ConsulServer, error) {
	bin, err := ConsulBinary(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	s := &ConsulServer{bin: bin, dir: dir, ports: ports}
	return s, s.Start(ctx)
}

func (s *ConsulServer) Name() string { return "consul" }

// Addr is the HTTP API's HOST:PORT.
func (s *ConsulServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.ports[0]) }

func (s *ConsulServer) Config() kvstore.Config {
	return kvstore.Config{Backend: kvstore.BackendConsul, Endpoints: []string{s.Addr()},
		Prefix: kvstore.DefaultPrefix, Token: ConsulToken, Timeout: kvstore.DefaultTimeout}
}

// Every test client connects from 127.0.0.1, so Consul's per-client
// connection limit (200 by default, meant for one agent per host) is
// raised for the test server.
const consulHCL = `
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
	s.proc, err = startProcess(s.bin, []string{"agent", "-dev", "-log-level", "warn",
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-node", "meshnet-test",
		"-http-port", p(0), "-server-port", p(1), "-serf-lan-port", p(2), "-serf-wan-port", p(3),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-hcl", consulHCL}, filepath.Join(s.dir, "consul.log"))
	if err != nil {
		return err
	}
	if err := waitReady(ctx, s.Config(), s.proc.exited); err != nil {
		s.Stop()
		return fmt.Errorf("consul server (log in %s): %w", s.dir, err)
	}
	return nil
}

func (s *ConsulServer) Stop() error {
	s.proc.stop()
	s.proc = nil
	return nil
}

func (s *ConsulServer) Close() error { return s.Stop() }
