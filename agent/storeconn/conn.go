// Package storeconn is the agent's connection to the cluster store:
// opening it (and starting the embedded server), registering the node,
// mirroring networks/ into the networks component (a listing, then a
// watch), knowing whether the store answers (a health probe and a gate
// that fails store calls fast while it does not), and the lease
// housekeeping of agent/ipam (this node's orphans, departed nodes'
// leases). Everything here retries in the background: the agent runs,
// with its local networks and existing sandboxes, while the store is
// down.
//
// Goroutines: Run starts the loops and returns when they have all
// returned. Locks: mu guards the connection state; it is a leaf, never
// held across a store call.
package storeconn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/agent/trust"
	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/kvstore/embedded"
)

// EmbeddedClientPort and EmbeddedPeerPort are where the embedded store
// listens (clients on the advertise address, the peer port on loopback).
const (
	EmbeddedClientPort = 2379
	EmbeddedPeerPort   = 2380
)

// Config is what the connection needs of the agent's configuration.
type Config struct {
	Store        kvstore.Config
	URL          string // the store as the user gave it, for messages
	NodeName     string
	DataDir      string     // the embedded server's data go under it
	VTEP         netip.Addr // this host's address, registered
	GossipPort   int
	Version      string
	GlobalPools  []ipam.AddressPool
	ReclaimAfter time.Duration // node-reclaim-after

	// Trust is the trust directory (agent/trust): the embedded store's
	// CA and certificates, or this host's certificate for another
	// agent's embedded store.
	Trust trust.Dir
	// JoinToken, when set, joins the cluster whose store (etcd://) is
	// another agent's embedded one.
	JoinToken *trust.Token
	// Keys, when set, keeps gossip's keyring equal to the store's; it
	// is read before gossip first joins the registered nodes.
	Keys *trust.KeySync
	// Trusted hears, once connected, that the store is the embedded one
	// of the cluster's CA and this host has its certificate (agent/trust):
	// the moment a first start has joined. It may block briefly.
	Trusted func()
	// LeasesChanged hears that a network's address leases were listed
	// (Holds may answer otherwise now). It must not block.
	LeasesChanged func(networkID string)
}

// Mirror receives networks/ as the store says it is (agent/networks).
type Mirror interface {
	ReplaceGlobal(recs []netstore.Record)
	PutGlobal(r netstore.Record)
	DeleteGlobal(id string)
}

// Holder tells the lease housekeeping which address leases this host's
// endpoints hold.
type Holder interface {
	// Holding runs fn with a test of the leases this host's endpoints
	// hold, while no operation takes or gives back a lease.
	Holding(fn func(holds func(ipam.AddressLease) bool) error) error
}

// Conn is the connection to the cluster store.
type Conn struct {
	cfg  Config
	log  *slog.Logger
	gate *gate

	mu     sync.Mutex       // guards the fields below; a leaf lock
	store  kvstore.Store    // nil until connected
	nets   *netstore.Store  // with store, through gate
	err    error            // why the store is not usable, nil when it is
	everUp bool             // the store has answered since start; firstUp is closed
	embed  *embedded.Server // cluster-store: embedded
	auth   *trust.Authority // cluster-store: embedded
	joins  *trust.JoinServer

	leaseMu  sync.Mutex            // guards leases; a leaf
	leases   map[string]*netLeases // network id → its leases (leases.go)
	leaseGen atomic.Uint64
	leaseWG  sync.WaitGroup // listings in flight

	// firstUp is closed when the store answers for the first time.
	firstUp chan struct{}
	// up is signalled once, when the store is first connected, so that
	// gossip joins the registered nodes without waiting a tick.
	up chan struct{}
	wg sync.WaitGroup
}

// New returns a connection; Run connects.
func New(cfg Config, log *slog.Logger) *Conn {
	return &Conn{cfg: cfg, log: log, gate: newGate(), firstUp: make(chan struct{}), up: make(chan struct{}, 1)}
}

// Up is signalled once, when the store is first connected.
func (c *Conn) Up() <-chan struct{} { return c.up }

// Run connects, registers the node, mirrors networks/ into mirror and
// keeps the leases until ctx ends, then returns once its loops have.
// present lists the nodes gossip sees (their leases are kept).
func (c *Conn) Run(ctx context.Context, mirror Mirror, holder Holder, present func() []string) {
	defer c.wg.Wait()
	store, err := c.connect(ctx)
	if err != nil {
		return // ctx done
	}
	gated := gatedStore{Store: store, gate: c.gate}
	alloc, err := ipam.New(gated, ipam.Config{Pools: c.cfg.GlobalPools})
	if err != nil {
		c.log.Error("configuring IPAM", "err", err)
		return
	}
	nets := netstore.New(gated, alloc, c.log)
	c.mu.Lock()
	c.store, c.nets = store, nets
	if c.err == nil { // open's ping answered
		c.answeredLocked()
	}
	c.mu.Unlock()
	if c.cfg.Trusted != nil && UsesClusterTrust(c.cfg.Store) && trust.Joined(c.cfg.Trust, nil) {
		c.cfg.Trusted()
	}
	if c.cfg.Keys != nil {
		if err := c.cfg.Keys.Sync(ctx, store); err != nil {
			c.log.Warn("reading the gossip keyring from the cluster store", "err", err)
		}
		c.goRun(func() { c.cfg.Keys.Run(ctx, c.Ready) })
	}
	c.up <- struct{}{}

	c.goRun(func() { c.registerLoop(ctx, store) })
	c.goRun(func() { c.healthLoop(ctx, store) })
	c.goRun(func() { c.leaseLoop(ctx, store, alloc, holder, present) })
	c.watchNetworks(ctx, nets, mirror)
}

func (c *Conn) goRun(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// Close closes the store client and stops the embedded server. Run must
// have returned.
func (c *Conn) Close() {
	c.mu.Lock()
	store, embed, joins := c.store, c.embed, c.joins
	c.mu.Unlock()
	c.leaseWG.Wait() // bounded by the store timeout
	if joins != nil {
		joins.Close()
	}
	if store != nil {
		store.Close()
	}
	if embed != nil {
		embed.Close()
	}
}

// NetStore returns the network records in the store, or a DownError when
// the store is down. Once the store has answered since start, a store
// known to be down fails at once (global operations fail fast); before
// that, it waits for the first answer up to the store timeout: a script
// that starts the agent and creates a network at once should not fail
// because the connection is still being made.
func (c *Conn) NetStore(ctx context.Context) (*netstore.Store, error) {
	select {
	case <-c.firstUp:
	default:
		t := time.NewTimer(c.cfg.Store.Timeout)
		select {
		case <-c.firstUp:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	return c.NetStoreNow()
}

// NetStoreNow is NetStore without waiting: for best-effort work (giving
// a lease back) that the orphan sweep does later if the store is down.
func (c *Conn) NetStoreNow() (*netstore.Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nets == nil || c.err != nil {
		cause := c.err
		if cause == nil {
			cause = errors.New("still connecting")
		}
		return nil, &DownError{cause}
	}
	return c.nets, nil
}

// Ready returns the store client when it is connected and answering.
func (c *Conn) Ready() (kvstore.Store, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store, c.store != nil && c.err == nil
}

// Status says how the store is: "ok", "connecting", or "unreachable: WHY".
func (c *Conn) Status() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.everUp && c.err == nil:
		return "connecting"
	case c.store == nil || c.err != nil:
		status := "unreachable"
		if c.err != nil {
			status += ": " + c.err.Error()
		}
		return status
	}
	return "ok"
}

// answeredLocked records that the store answers; the first time, it
// releases the operations waiting in NetStore. The caller holds mu.
func (c *Conn) answeredLocked() {
	c.err = nil
	c.gate.markUp()
	if !c.everUp {
		c.everUp = true
		close(c.firstUp)
	}
}

// NoteErr marks the store down when err says it is unreachable.
func (c *Conn) NoteErr(err error) {
	if errors.Is(err, kvstore.ErrUnavailable) {
		c.mu.Lock()
		if c.err == nil {
			c.log.Warn("cluster store unreachable", "err", err)
			c.err = errors.New(c.cfg.URL + " does not answer")
			c.gate.markDown()
		}
		c.mu.Unlock()
	}
}

// connect opens the store client (starting the embedded server first),
// retrying until it succeeds or ctx ends.
func (c *Conn) connect(ctx context.Context) (kvstore.Store, error) {
	b := backoff.New(500*time.Millisecond, 10*time.Second)
	for {
		s, err := c.open(ctx)
		if err == nil {
			return s, nil
		}
		c.log.Warn("cannot connect to the cluster store yet; retrying", "err", err)
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		if !b.Wait(ctx) {
			return nil, ctx.Err()
		}
	}
}

func (c *Conn) open(ctx context.Context) (kvstore.Store, error) {
	cfg := c.cfg.Store
	var err error
	switch {
	case cfg.Backend == kvstore.BackendEmbedded:
		if cfg, err = c.serveEmbedded(ctx, cfg); err != nil {
			return nil, err
		}
	case UsesClusterTrust(cfg):
		// Another agent's embedded store: join it with the token once;
		// the certificate then serves every start.
		dir := c.cfg.Trust
		if tok := c.cfg.JoinToken; tok != nil && !trust.Joined(dir, tok) {
			host, _, _ := net.SplitHostPort(cfg.Endpoints[0])
			addr := net.JoinHostPort(host, strconv.Itoa(trust.JoinPort))
			if err := trust.Join(ctx, dir, trust.JoinOptions{Addr: addr, Token: *tok, Node: c.cfg.NodeName, Dial: cfg.Dial}); err != nil {
				return nil, err
			}
			c.log.Info("joined the cluster: this host has its certificate for the store", "via", addr)
		}
		if trust.Joined(dir, nil) {
			cfg.CAFile, cfg.CertFile, cfg.KeyFile = dir.Path(trust.CAFile), dir.Path(trust.CertFile), dir.Path(trust.KeyFile)
			cfg.PrivateCA = true
		}
	}
	s, err := backends.Open(cfg)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := kvstore.Ping(pingCtx, s); err != nil && !errors.Is(err, kvstore.ErrUnavailable) {
		s.Close()
		return nil, err // wrong credentials: say so, keep retrying
	} else if err != nil {
		c.NoteErr(err)
	} else {
		c.mu.Lock()
		c.err = nil
		c.mu.Unlock()
	}
	return s, nil
}

// UsesClusterTrust reports whether the store is an agent's embedded one
// (this host's, or another's given as etcd:// without certificate
// options), whose CA is the cluster's (agent/trust).
func UsesClusterTrust(cfg kvstore.Config) bool {
	return cfg.Backend == kvstore.BackendEmbedded || cfg.Backend == kvstore.BackendEtcd && cfg.CAFile == "" && cfg.CertFile == ""
}

// serveEmbedded starts the embedded store, TLS with client certificates
// of the cluster's CA only, and the join service beside it, and returns
// the client configuration of it.
func (c *Conn) serveEmbedded(ctx context.Context, cfg kvstore.Config) (kvstore.Config, error) {
	c.mu.Lock()
	srv, auth := c.embed, c.auth
	c.mu.Unlock()
	dir := c.cfg.Trust
	if auth == nil {
		var err error
		if auth, err = trust.OpenAuthority(dir, c.cfg.NodeName, c.cfg.VTEP); err != nil {
			return cfg, err
		}
		joins, err := auth.ServeJoin(net.JoinHostPort(c.cfg.VTEP.String(), strconv.Itoa(trust.JoinPort)), c.log)
		if err != nil {
			return cfg, err
		}
		c.mu.Lock()
		c.auth, c.joins = auth, joins
		c.mu.Unlock()
	}
	if srv == nil {
		cert, key := auth.ServerFiles()
		var err error
		srv, err = embedded.Start(ctx, embedded.Config{
			Name:      c.cfg.NodeName,
			Dir:       filepath.Join(c.cfg.DataDir, "etcd"),
			ClientURL: "https://" + net.JoinHostPort(c.cfg.VTEP.String(), strconv.Itoa(EmbeddedClientPort)),
			PeerURL:   "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(EmbeddedPeerPort)),
			CertFile:  cert, KeyFile: key, ClientCAFile: dir.Path(trust.CAFile),
		})
		if err != nil {
			return cfg, err
		}
		c.mu.Lock()
		c.embed = srv
		c.mu.Unlock()
		c.log.Info("embedded cluster store serving (TLS, client certificates of the cluster CA)", "endpoints", srv.Endpoints(),
			"joins", trust.JoinPort)
	}
	cfg.Endpoints = srv.Endpoints()
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = dir.Path(trust.CAFile), dir.Path(trust.CertFile), dir.Path(trust.KeyFile)
	cfg.PrivateCA = true
	return cfg, nil
}

// Authority is the cluster's CA when this agent serves the embedded
// store, else nil.
func (c *Conn) Authority() *trust.Authority {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.auth
}

// DownError is returned by global operations while the store is not
// usable. It wraps kvstore.ErrUnavailable.
type DownError struct{ cause error }

func (e *DownError) Error() string {
	return "the cluster store is unreachable: " + e.cause.Error()
}
func (e *DownError) Unwrap() error { return kvstore.ErrUnavailable }
