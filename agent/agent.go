package agent

// The agent ties the parts together:
//
//   - the cluster store (store.go) holds global networks and leases; the
//     agent registers its node there, mirrors networks/ into memory with a
//     watch, and keeps working from that mirror (and its copy in the data
//     dir) while the store is down;
//   - gossip (gossip.Cluster) tells where every endpoint lives; the agent
//     publishes its own endpoints and subscribes to the networks it has
//     endpoints in;
//   - the datapath loop (datapath.go) turns networks + local sandboxes +
//     gossip into overlay.Apply calls, one at a time;
//   - the API (server.go) serves agentctl on the unix socket.
//
// Shutdown leaves the kernel alone (bridges, VXLAN devices, FDB entries,
// veths and sandboxes keep forwarding), and it does not leave the gossip
// cluster: peers keep our endpoints while we restart. A restart reloads the
// data dir, re-announces the local endpoints, and programs the datapath
// from the cached remote endpoints until gossip has caught up, so that
// established flows are not disturbed.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/gossip"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/embedded"
	"github.com/meshnet/meshnet/overlay"
)

// Version is the agent's version, set at build time with
// -ldflags "-X github.com/meshnet/meshnet/agent.Version=…".
var Version = "dev"

// Agent is one host's meshagent.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	vtep  netip.Addr // this host's underlay address (VTEP, gossip, embedded store)
	mtu   int        // underlay MTU
	state *stateFile

	dp     *overlay.Datapath
	gossip *gossip.Cluster
	embed  *embedded.Server // cluster-store: embedded

	// opMu serialises changes of networks and sandboxes made through the
	// API, so that checks ("no endpoints", "name free") and the changes
	// that rely on them do not interleave. Store calls happen under it;
	// readers only take mu.
	opMu sync.Mutex

	mu sync.Mutex
	// Guarded by mu:
	store     kvstore.Store   // nil until connected
	alloc     *ipam.Allocator // with store
	storeErr  error           // why the store is not usable, nil when it is
	networks  map[string]*networkRecord
	sandboxes map[string]*sandboxRecord // by id
	remote    map[string][]gossip.Endpoint
	synced    bool // gossip has caught up; until then remote is the cache
	peers     []string

	subMu      sync.Mutex
	subs       map[string]*gossip.Subscription // guarded by subMu; per global network
	subsClosed bool                            // guarded by subMu; set at shutdown

	// applyMu makes computing the desired datapath and applying it one
	// step, so that an older view is never applied after a newer one.
	applyMu sync.Mutex
	// storeUp is signalled once, when the store is first connected, so
	// that gossip joins the registered nodes without waiting a tick.
	storeUp chan struct{}
	dpKick  chan struct{}

	wg sync.WaitGroup
}

// New prepares an agent: it resolves the advertise address and loads the
// data dir. It starts nothing.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, networks: map[string]*networkRecord{},
		sandboxes: map[string]*sandboxRecord{}, remote: map[string][]gossip.Endpoint{},
		dpKick: make(chan struct{}, 1), storeUp: make(chan struct{}, 1)}
	var err error
	if a.vtep, a.mtu, err = resolveAdvertise(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data-dir: %w", err)
	}
	a.state = &stateFile{path: cfg.DataDir + "/state.json"}
	st, err := a.state.load()
	if err != nil {
		return nil, err
	}
	for _, n := range st.Networks {
		a.networks[n.ID] = n
	}
	for _, s := range st.Sandboxes {
		a.sandboxes[s.ID] = s
	}
	for id, eps := range st.Remote {
		a.remote[id] = eps
	}
	a.peers = st.Peers
	return a, nil
}

// Run runs the agent until ctx is cancelled, then shuts down and leaves
// the datapath as it is.
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("starting meshagent", "version", Version, "node", a.cfg.NodeName,
		"advertise", a.vtep, "store", a.cfg.StoreURL, "data-dir", a.cfg.DataDir)
	h, err := netns.Get()
	if err != nil {
		return fmt.Errorf("opening the host network namespace: %w", err)
	}
	a.dp, err = overlay.New(h)
	h.Close()
	if err != nil {
		return err
	}
	defer a.dp.Close()

	if a.cfg.IPForward {
		// Equivalent to: sysctl -w net.ipv4.ip_forward=1 (in this namespace).
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
			a.log.Warn("cannot enable IP forwarding", "err", err)
		}
	}
	if err := a.ensurePredefined(); err != nil {
		return err
	}
	if a.gossip, err = a.startGossip(ctx); err != nil {
		return err
	}
	defer a.gossip.Close()
	a.announceLocal()
	a.syncSubscriptions() // networks known from the data dir

	srv, err := a.listenAPI()
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(ctx)
	a.goRun(func() { a.datapathLoop(runCtx) })
	a.goRun(func() { a.storeLoop(runCtx) })
	a.goRun(func() { a.gossipLoop(runCtx) })
	a.kickDatapath()
	a.log.Info("meshagent ready", "api", a.cfg.Hosts)

	<-ctx.Done()
	a.log.Info("shutting down; the datapath keeps running")
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	srv.shutdown(shutdownCtx)
	stop()
	cancel()
	a.closeSubscriptions()
	a.wg.Wait()
	a.saveState()
	a.mu.Lock()
	store := a.store
	a.mu.Unlock()
	if store != nil {
		store.Close()
	}
	if a.embed != nil {
		a.embed.Close()
	}
	return nil
}

// startGossip starts the gossip listeners. A restarted agent may find its
// port still held for a moment by the previous process finishing its
// shutdown, so binding is retried for a while.
func (a *Agent) startGossip(ctx context.Context) (*gossip.Cluster, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := gossip.New(gossip.Config{
			NodeName: a.cfg.NodeName, BindAddr: a.vtep.String(), BindPort: a.cfg.GossipPort,
			VTEP: a.vtep, Version: Version, SecretKey: a.cfg.GossipKey, Logger: a.log,
		})
		// memberlist formats the bind error with %v: match its text.
		if err == nil || !strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) || time.Now().After(deadline) {
			return c, err
		}
		a.log.Warn("gossip port busy; retrying", "port", a.cfg.GossipPort)
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (a *Agent) goRun(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// resolveAdvertise finds this host's underlay address and MTU from
// cluster-advertise (an interface or an address), or the first
// non-loopback interface with an IPv4 address.
func resolveAdvertise(cfg Config) (netip.Addr, int, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if cfg.AdvertiseIface != "" && ifc.Name != cfg.AdvertiseIface {
			continue
		}
		if cfg.AdvertiseIface == "" && (ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagUp == 0) {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, ad := range addrs {
			ipn, ok := ad.(*net.IPNet)
			if !ok {
				continue
			}
			ip, _ := netip.AddrFromSlice(ipn.IP)
			ip = ip.Unmap()
			if cfg.AdvertiseAddr.IsValid() {
				if ip == cfg.AdvertiseAddr {
					return ip, ifc.MTU, nil
				}
				continue
			}
			if ip.Is4() && !ip.IsLinkLocalUnicast() {
				return ip, ifc.MTU, nil
			}
		}
	}
	switch {
	case cfg.AdvertiseAddr.IsValid():
		return netip.Addr{}, 0, fmt.Errorf("invalid cluster-advertise: %s is not an address of this host", cfg.AdvertiseAddr)
	case cfg.AdvertiseIface != "":
		return netip.Addr{}, 0, fmt.Errorf("invalid cluster-advertise: interface %s does not exist or has no IPv4 address", cfg.AdvertiseIface)
	}
	return netip.Addr{}, 0, errors.New("no cluster-advertise given and no interface other than loopback has an IPv4 address")
}
