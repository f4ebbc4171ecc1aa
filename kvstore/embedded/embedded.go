// Package embedded runs a real, single-member etcd server inside the
// process: the agent's default cluster store (cluster-store: embedded). The
// server keeps its data in a directory and serves etcd clients on an
// address, so other agents reach it with etcd://THAT-HOST:2379 and the agent
// itself uses the ordinary etcd backend against it.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config says where the server keeps data and listens.
type Config struct {
	Name      string // member name; default "meshnet"
	Dir       string // data directory, created if missing
	ClientURL string // e.g. http://192.0.2.1:2379
	PeerURL   string // e.g. http://127.0.0.1:2380; only this member uses it
	// CertFile and KeyFile, when set, make the client URL https:// with
	// this server certificate, and ClientCAFile then names the CA whose
	// client certificates are the only ones taken: no client without one
	// gets past the TLS handshake.
	CertFile, KeyFile, ClientCAFile string
	// StartTimeout bounds how long Start waits for the server to be ready;
	// default one minute.
	StartTimeout time.Duration
}

// Server is a running embedded etcd server.
type Server struct {
	etcd      *embed.Etcd
	endpoints []string
}

// Start starts the server and waits until it serves clients.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded store: no data directory")
	}
	if cfg.Name == "" {
		cfg.Name = "meshnet"
	}
	client, err := url.Parse(cfg.ClientURL)
	if err != nil || client.Host == "" {
		return nil, fmt.Errorf("embedded store: invalid client URL %q", cfg.ClientURL)
	}
	peer, err := url.Parse(cfg.PeerURL)
	if err != nil || peer.Host == "" {
		return nil, fmt.Errorf("embedded store: invalid peer URL %q", cfg.PeerURL)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: creating data directory: %w", err)
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{*client}
	ec.AdvertiseClientUrls = []url.URL{*client}
	ec.ListenPeerUrls = []url.URL{*peer}
	ec.AdvertisePeerUrls = []url.URL{*peer}
	ec.InitialCluster = cfg.Name + "=" + peer.String()
	if cfg.CertFile != "" {
		if client.Scheme != "https" || cfg.ClientCAFile == "" {
			return nil, errors.New("embedded store: TLS needs an https:// client URL and a client CA")
		}
		ec.ClientTLSInfo = transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile,
			TrustedCAFile: cfg.ClientCAFile, ClientCertAuth: true}
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Keep an hour of history for watches to resume from; compact the rest
	// so the database does not grow without bound.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded store: starting etcd: %w", err)
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded store: %w", err)
	case <-t.C:
		e.Close()
		return nil, fmt.Errorf("embedded store: not ready after %s", timeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Server{etcd: e, endpoints: []string{client.Host}}, nil
}

// Endpoints are the HOST:PORT addresses clients connect to.
func (s *Server) Endpoints() []string { return s.endpoints }

// Err delivers a fatal server error.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the server gracefully; the data stays in the directory.
func (s *Server) Close() { s.etcd.Close() }
