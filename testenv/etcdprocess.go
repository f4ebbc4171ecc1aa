package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/meshnet/meshnet/kvstore"
)

// EtcdProcess is an etcd server in a process of its own
// (testenv/etcdserver).
type EtcdProcess struct {
	bin, dir         string
	opts             ServerOptions
	client, peerAddr string // HOST:PORT
	proc             *Process
}

// StartEtcdProcess builds and starts an etcd server process on loopback
// with data under dir.
func StartEtcdProcess(ctx context.Context, dir string) (*EtcdProcess, error) {
	return StartEtcdProcessWith(ctx, dir, ServerOptions{})
}

// StartEtcdProcessWith builds and starts an etcd server process placed as
// opts say, with data under dir. Peers are served on loopback: the
// server is a cluster of one.
func StartEtcdProcessWith(ctx context.Context, dir string, opts ServerOptions) (*EtcdProcess, error) {
	bin, err := EtcdServerBinary(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := opts.ports(2379, 2380)
	if err != nil {
		return nil, err
	}
	s := &EtcdProcess{bin: bin, dir: dir, opts: opts,
		client:   hostPort(opts.addr(), ports[0]),
		peerAddr: hostPort("127.0.0.1", ports[1])}
	return s, s.Start(ctx)
}

func (s *EtcdProcess) Name() string { return "etcd" }

// Addr is the HOST:PORT clients connect to.
func (s *EtcdProcess) Addr() string { return s.client }

func (s *EtcdProcess) Config() kvstore.Config {
	return s.opts.clientTLS(kvstore.Config{Backend: kvstore.BackendEtcd, Endpoints: []string{s.client},
		Prefix: kvstore.DefaultPrefix, Timeout: kvstore.DefaultTimeout, Dial: s.opts.dial()})
}

func (s *EtcdProcess) Start(ctx context.Context) (err error) {
	args := []string{"-data-dir", filepath.Join(s.dir, "etcd"), "-client-url", "http://" + s.client, "-peer-url", "http://" + s.peerAddr}
	if p := s.opts.TLS; p != nil {
		args = append(args, "-client-url", "https://"+s.client, "-cert", p.File("server.pem"), "-key", p.File("server-key.pem"),
			"-client-ca", p.File("ca.pem"))
	}
	s.proc, err = StartProcess(s.bin, args,
		ProcessOptions{Log: filepath.Join(s.dir, "etcd.log"), NS: s.opts.NS})
	if err != nil {
		return err
	}
	if err := waitReady(ctx, s.Config(), s.proc.Exited()); err != nil {
		s.Stop()
		return fmt.Errorf("etcd server process (log in %s): %w", s.dir, err)
	}
	return nil
}

func (s *EtcdProcess) Stop() error {
	s.proc.Stop(10 * time.Second)
	s.proc = nil
	return nil
}

func (s *EtcdProcess) Close() error {
	s.Stop()
	return os.RemoveAll(filepath.Join(s.dir, "etcd"))
}
