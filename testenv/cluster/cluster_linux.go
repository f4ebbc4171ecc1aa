package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// Stores a cluster can run on.
const (
	StoreEmbedded  = "embedded"  // the first agent serves etcd on 192.0.2.1:2379
	StoreEtcd      = "etcd"      // an etcd server process on StoreAddr
	StoreConsul    = "consul"    // a Consul server on StoreAddr
	StoreZooKeeper = "zookeeper" // a ZooKeeper server on StoreAddr
)

// StoreAddr is the underlay address of the store's namespace (etcd,
// Consul and ZooKeeper stores).
var StoreAddr = netip.MustParseAddr("192.0.2.250")

// Options describe a cluster.
type Options struct {
	// Hosts is the number of hosts started by New (n1, n2, …); default 2.
	Hosts int
	// Store is StoreEmbedded (default), StoreEtcd, StoreConsul or
	// StoreZooKeeper.
	Store string
	// Tag is a short word in the namespace names; default "cl".
	Tag string
	// AgentArgs are extra meshagent flags for every agent.
	AgentArgs []string
	// AgentWrapper, if set, is a command that runs the agent: the agent's
	// path and arguments are appended to it (say, unshare --mount).
	AgentWrapper []string
	// StartTimeout bounds waiting for a process to serve; default two
	// minutes (a guard against hangs, not a performance limit).
	StartTimeout time.Duration
}

// Cluster is a running cluster. Its methods may be called from several
// goroutines.
type Cluster struct {
	// Prefix starts the name of every namespace of the cluster.
	Prefix string
	opts   Options
	dir    string
	bins   testenv.AgentBins

	underlay  *nshost.Underlay
	storeHost *nshost.Host        // etcd, Consul and ZooKeeper stores
	server    testenv.StoreServer // etcd, Consul and ZooKeeper stores

	addMu sync.Mutex // serialises AddHost, which numbers the hosts

	mu    sync.Mutex
	hosts []*Host       // guarded by mu
	kv    kvstore.Store // guarded by mu; opened by Store
}

// New builds the underlay, starts the store and an agent per host, and
// waits until every agent answers GET /info with its store usable. On
// error it cleans up what it made.
func New(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Hosts <= 0 {
		opts.Hosts = 2
	}
	if opts.Store == "" {
		opts.Store = StoreEmbedded
	}
	if opts.Tag == "" {
		opts.Tag = "cl"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	switch opts.Store {
	case StoreEmbedded, StoreEtcd, StoreConsul, StoreZooKeeper:
	default:
		return nil, fmt.Errorf("unknown store %q (known: %s, %s, %s, %s)", opts.Store,
			StoreEmbedded, StoreEtcd, StoreConsul, StoreZooKeeper)
	}
	bins, err := testenv.AgentBinaries(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mn-cluster-") // short: socket paths are limited to 107 bytes
	if err != nil {
		return nil, err
	}
	c = &Cluster{Prefix: nshost.Prefix(opts.Tag), opts: opts, dir: dir, bins: bins}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if c.underlay, err = nshost.NewUnderlay(c.Prefix); err != nil {
		return c, err
	}
	if err := c.startStore(ctx); err != nil {
		return c, err
	}
	for range opts.Hosts {
		if _, err := c.AddHost(ctx); err != nil {
			return c, err
		}
	}
	return c, nil
}

// NewT is New for a test: it fails the test on error, and closes the
// cluster when the test ends, logging the tail of every process's log
// first if the test failed.
func NewT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("starting a %s cluster: %v", opts.Store, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.DumpLogs(t.Logf)
		}
		if err := c.Close(); err != nil {
			t.Errorf("closing the cluster: %v", err)
		}
	})
	return c
}

// Name returns PREFIX-SHORT: the name to give a sandbox so that Close
// finds it.
func (c *Cluster) Name(short string) string { return c.Prefix + "-" + short }

// StoreKind is the store the cluster runs on.
func (c *Cluster) StoreKind() string { return c.opts.Store }

// Bins are the meshagent and agentctl binaries the cluster runs.
func (c *Cluster) Bins() testenv.AgentBins { return c.bins }

// Hosts returns the hosts, in the order added.
func (c *Cluster) Hosts() []*Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Host(nil), c.hosts...)
}

// Host returns host i (0-based: Host(0) is n1).
func (c *Cluster) Host(i int) *Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts[i]
}

// AddHost adds a host (the next of n1, n2, … at 192.0.2.N) to the
// underlay, starts its agent and waits until the agent has reached the
// cluster store; it may join a running cluster.
func (c *Cluster) AddHost(ctx context.Context) (*Host, error) {
	h, err := c.AddBareHost("")
	if err != nil {
		return nil, err
	}
	if err := h.Start(ctx); err != nil {
		return h, err
	}
	return h, h.WaitStore(ctx)
}

// Close stops every agent and the store, deletes every namespace of the
// cluster (hosts, underlay, store, and sandboxes left behind: every
// /run/netns/PREFIX-* and /etc/netns/PREFIX-*) and the cluster's files.
// It is idempotent.
func (c *Cluster) Close() error {
	var errs []error
	var wg sync.WaitGroup
	for _, h := range c.Hosts() {
		wg.Go(func() {
			if err := h.Stop(); err != nil {
				c.mu.Lock()
				errs = append(errs, err)
				c.mu.Unlock()
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	if c.kv != nil {
		c.kv.Close()
		c.kv = nil
	}
	c.mu.Unlock()
	if c.server != nil {
		errs = append(errs, c.server.Close())
		c.server = nil
	}
	if c.underlay != nil {
		errs = append(errs, c.underlay.Close())
	}
	errs = append(errs, nshost.RemoveAll(c.Prefix+"-"))
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
		c.dir = ""
	}
	return errors.Join(errs...)
}

// Store returns a client of the cluster store with the agents' prefix
// (meshnet/v1/), for inspecting keys; it dials from inside the store's
// namespace (or n1's for the embedded store). The cluster closes it.
func (c *Cluster) Store() (kvstore.Store, error) {
	cfg := c.storeConfig()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kv != nil {
		return c.kv, nil
	}
	kv, err := backends.Open(cfg)
	if err != nil {
		return nil, err
	}
	c.kv = kv
	return kv, nil
}

// OutsideAddr is the underlay address of the "outside" namespace
// (AddOutside): a machine of the world beyond the cluster's hosts.
var OutsideAddr = netip.MustParseAddr("192.0.2.200")

// AddOutside adds a namespace at OutsideAddr on the underlay that runs no
// agent: it stands for the outside world, to see what sandboxes' traffic
// looks like when it leaves their host, and to reach published ports. It
// is deleted with the cluster.
func (c *Cluster) AddOutside() (*nshost.Host, error) {
	c.addMu.Lock()
	defer c.addMu.Unlock()
	return c.underlay.AddHost("out", netip.PrefixFrom(OutsideAddr, 24))
}
