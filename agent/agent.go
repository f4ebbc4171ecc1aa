package agent

// The agent ties the parts together:
//
//   - drivers (agent/driver) say what each kind of network is and render
//     its kernel state; the agent core never names one;
//   - the cluster store (store.go, agent/netstore, agent/ipam) holds
//     global networks and leases; the agent registers its node there,
//     mirrors networks/ with a watch, and keeps working from that mirror
//     (and its copy in the data dir) while the store is down;
//   - gossip (gossip.Cluster) tells where every endpoint lives; the agent
//     announces its joined endpoints and subscribes to global networks;
//   - the reconciler (reconciler.go) applies the drivers' rendering
//     (datapath.go) to the kernel, network by network;
//   - the operations (networks.go, endpoints.go, sandboxes.go, views.go)
//     implement service.Service, which the API (agent/apiserver) serves.
//
// Concurrency. Goroutines, all started by Run and waited for before it
// returns: the API server's handlers (owned by apiserver.Server, which
// Shutdown waits for), the reconciler loop, the store loop and the loops
// it starts (registration, health, lease housekeeping, the network
// watch), the gossip join loop, the gone-sandbox reaper, and one consumer
// per gossip subscription. Locks, in the order they are taken:
//
//	opMu           serialises operations that change networks, endpoints
//	               and sandboxes (the API's, the orphan sweep, the reaper),
//	               so that checks ("no endpoints", "name free") and the
//	               changes relying on them do not interleave; store calls
//	               and kernel writes happen under it
//	state.mu       from a snapshot of the records to its rename on disk
//	recon.applyMu  one kernel write at a time (reconciler.go)
//	subMu          the gossip subscriptions
//	mu             the records and store state (the fields below it); held
//	               only for reads and writes of them, never across a store
//	               call, a kernel write or a wait
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
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netns"

	"github.com/meshnet/meshnet/agent/apiserver"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/driver/builtin"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/firewall"
	"github.com/meshnet/meshnet/gossip"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/embedded"
	"github.com/meshnet/meshnet/resolver"
)

// Version is the agent's version, set at build time with
// -ldflags "-X github.com/meshnet/meshnet/agent.Version=…".
var Version = "dev"

// shutdownGrace is how long API requests in flight may go on after a
// stop signal before they are cancelled (and roll back).
const shutdownGrace = 5 * time.Second

// Agent is one host's meshagent. It implements service.Service, whose
// methods may be called once Run is serving (as its API server does).
type Agent struct {
	cfg     Config
	log     *slog.Logger
	vtep    netip.Addr // this host's underlay address (VTEP, gossip, embedded store)
	mtu     int        // underlay MTU
	state   *stateFile
	drivers *driver.Registry
	metrics *prometheus.Registry

	dp     *datapath.Datapath
	fw     *firewall.Firewall // nil with iptables: false
	dns    *resolver.Server
	names  *dnsNames
	fwErr  string      // the filter's last error, guarded by recon.applyMu
	fwDown atomic.Bool // the filter's last write failed: bridges do not forward
	recon  *reconciler
	gossip *gossip.Cluster
	embed  *embedded.Server // cluster-store: embedded

	opMu sync.Mutex // see the top of this file

	saves atomic.Int64 // writes of the state file, for /metrics

	mu sync.Mutex
	// Guarded by mu:
	store      kvstore.Store   // nil until connected
	nets       *netstore.Store // with store, through gate
	gate       *storeGate      // fails store calls fast while the store is down
	storeErr   error           // why the store is not usable, nil when it is
	everUp     bool            // the store has answered since start; firstUp is closed
	networks   map[string]*driver.Network
	versions   map[string]uint64 // store versions of global networks' records, 0 unknown
	sandboxes  map[string]*sandboxRecord
	endpoints  map[string]*endpointRecord
	byNetwork  map[string]map[string]*endpointRecord // endpoints by network, then id (putEndpointLocked)
	remote     map[string][]gossip.Endpoint          // remote endpoints last programmed, for a restart
	remoteSave *time.Timer                           // a pending save of remote
	stopped    bool                                  // Run is returning: remoteSave does nothing
	synced     bool                                  // gossip has caught up; until then remote is the cache
	peers      []string

	subMu      sync.Mutex
	subs       map[string]*gossip.Subscription // guarded by subMu; per global network
	subsClosed bool                            // guarded by subMu; set at shutdown

	// storeUp is signalled once, when the store is first connected, so
	// that gossip joins the registered nodes without waiting a tick.
	storeUp chan struct{}
	// firstUp is closed when the store answers for the first time.
	firstUp chan struct{}
	// reap asks the reaper to look for sandboxes whose namespace is gone.
	reap chan struct{}

	wg sync.WaitGroup
}

var _ service.Service = (*Agent)(nil)

// New prepares an agent: it resolves the advertise address, sets up the
// drivers and loads the data dir. It starts nothing.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, networks: map[string]*driver.Network{}, versions: map[string]uint64{},
		sandboxes: map[string]*sandboxRecord{}, endpoints: map[string]*endpointRecord{},
		byNetwork: map[string]map[string]*endpointRecord{},
		remote:    map[string][]gossip.Endpoint{},
		storeUp:   make(chan struct{}, 1), firstUp: make(chan struct{}), reap: make(chan struct{}, 1), gate: newStoreGate()}
	var err error
	if a.vtep, a.mtu, err = resolveAdvertise(cfg); err != nil {
		return nil, err
	}
	a.drivers = builtin.Registry(builtin.Config{DefaultBridge: cfg.Bridge, BIP: cfg.BIP, MTU: cfg.MTU, NoICC: !cfg.ICC,
		HostRoutes: hostRoutes, VTEP: a.vtep, VXLANPort: uint16(cfg.VXLANPort), UnderlayMTU: a.mtu})
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
	for _, e := range st.Endpoints {
		a.putEndpointLocked(e)
	}
	for id, eps := range st.Remote {
		a.remote[id] = eps
	}
	a.peers = st.Peers
	a.metrics = a.newMetrics()
	return a, nil
}

// Run runs the agent until ctx is cancelled, then shuts down and leaves
// the datapath as it is.
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("starting meshagent", "version", Version, "node", a.cfg.NodeName,
		"advertise", a.vtep, "store", a.cfg.StoreURL, "data-dir", a.cfg.DataDir)
	if privateMountNamespace() {
		a.log.Warn("meshagent runs in a private mount namespace, so the sandboxes it creates under /run/netns are invisible to the host; " +
			"start it in the host's mount namespace (nsenter --net=PATH instead of ip netns exec; no PrivateMounts/PrivateTmp/ProtectSystem in its unit)")
	}
	h, err := netns.Get()
	if err != nil {
		return fmt.Errorf("opening the host network namespace: %w", err)
	}
	a.dp, err = datapath.New(h)
	if err != nil {
		h.Close()
		return err
	}
	defer a.dp.Close()
	fw, err := firewall.New(h)
	h.Close()
	if err != nil {
		return err
	}
	a.recon = newReconciler(a.dp, a.desiredNetwork, a.desiredAll, a.applyFailed, a.log)
	if err := a.startFirewall(fw); err != nil {
		return fmt.Errorf("removing the packet filter (iptables: false): %w", err)
	}
	if a.fw != nil {
		defer a.fw.Close() // the rules stay: they keep working while the agent is down
	}

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
	a.pinSandboxes()
	a.announceLocal()
	a.names = &dnsNames{a: a}
	a.dns = resolver.New(a.names, redirectDNS, firewall.UnredirectDNS, a.log)
	defer a.dns.Close() // sandboxes cannot resolve while the agent is down; the redirects stay
	a.mu.Lock()
	all := slices.Collect(maps.Values(a.sandboxes))
	a.mu.Unlock()
	for _, s := range all {
		a.syncDNS(s)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := apiserver.ListenDebug(a, a.cfg.Hosts, a.log, a.cfg.LogLevel == "debug")
	if err != nil {
		return err
	}
	a.syncSubscriptions() // networks known from the data dir
	a.goRun(func() { a.recon.Run(runCtx) })
	a.goRun(func() { a.storeLoop(runCtx) })
	a.goRun(func() { a.gossipLoop(runCtx) })
	a.goRun(func() { a.reapLoop(runCtx) })
	a.log.Info("meshagent ready", "api", a.cfg.Hosts)

	<-ctx.Done()
	a.log.Info("shutting down; the datapath keeps running")
	srv.Shutdown(shutdownGrace) // every handler has returned (rolled back if cancelled)
	cancel()
	a.closeSubscriptions()
	a.wg.Wait()
	a.mu.Lock()
	a.stopped = true // no more saves of the remote cache from its timer
	if a.remoteSave != nil {
		a.remoteSave.Stop()
	}
	store := a.store
	a.mu.Unlock()
	a.saveState()
	a.state.close()
	if store != nil {
		store.Close()
	}
	if a.embed != nil {
		a.embed.Close()
	}
	return nil
}

// redirectDNS sends 127.0.0.11:53 in a sandbox to the resolver's sockets.
func redirectDNS(ns netns.NsHandle, udpPort, tcpPort int) error {
	return firewall.RedirectDNS(ns, resolver.Address, udpPort, tcpPort)
}

// applyFailed hears of every failure to program a network: a sandbox's
// namespace may be gone (reapLoop looks). It never blocks.
func (a *Agent) applyFailed(string, error) {
	select {
	case a.reap <- struct{}{}:
	default:
	}
}

// reapLoop looks for sandboxes whose namespace is gone at start (with the
// store coming up, so that their leases can go back), when an apply fails,
// and every resyncInterval.
func (a *Agent) reapLoop(ctx context.Context) {
	t := time.NewTicker(resyncInterval)
	defer t.Stop()
	a.reapGoneSandboxes()
	for {
		select {
		case <-a.reap:
		case <-t.C:
		case <-ctx.Done():
			return
		}
		a.reapGoneSandboxes()
	}
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
