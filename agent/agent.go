// Package agent is meshagent: it reads the configuration and wires the
// components together — this file is the whole picture.
//
//	adapters    agent/apiserver (HTTP API), agent/cniserver (CNI plugin),
//	            agent/dockerplugin (Docker network + IPAM plugin)
//	               │ service.Service
//	controller  agent/controller: operations, their rollback, the operation lock
//	               │
//	components  agent/networks      networks and their life cycle
//	            agent/sandboxes     this host's sandbox and endpoint records
//	            agent/storeconn     the cluster store: leases, node, network mirror
//	            agent/membership    gossip: announcements, remote endpoints
//	            agent/dataplane     the kernel: datapath, packet filter, DNS
//	            agent/statefile     the data dir
//	               │
//	kernel      datapath, sandbox, firewall, resolver (packages of their own)
//
// Goroutines, all started by Run and waited for before it returns: the API
// server's handlers (owned by apiserver.Server, whose Shutdown waits for
// them), the dataplane's reconciler, the store connection's loops, the
// gossip join loop and subscription consumers, and the reaper of sandboxes
// whose namespace is gone. Locks, in the order they may be taken: the
// controller's operation lock, then the reconciler's apply lock, then the
// components' own, which are leaves (see each package).
//
// Shutdown leaves the kernel alone (bridges, VXLAN devices, FDB entries,
// veths and sandboxes keep forwarding), and it does not leave the gossip
// cluster: peers keep our endpoints while we restart. A restart reloads the
// data dir, re-announces the local endpoints, and programs the datapath
// from the cached remote endpoints until gossip has caught up, so that
// established flows are not disturbed.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netns"

	"github.com/meshnet/meshnet/agent/apiserver"
	"github.com/meshnet/meshnet/agent/cniserver"
	"github.com/meshnet/meshnet/agent/controller"
	"github.com/meshnet/meshnet/agent/dataplane"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/driver/builtin"
	"github.com/meshnet/meshnet/agent/membership"
	"github.com/meshnet/meshnet/agent/networks"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/agent/statefile"
	"github.com/meshnet/meshnet/agent/storeconn"
	"github.com/meshnet/meshnet/agent/trust"
	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/firewall"
	"github.com/meshnet/meshnet/gossip"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/resolver"
)

// Version is the agent's version, set at build time with
// -ldflags "-X github.com/meshnet/meshnet/agent.Version=…".
var Version = "dev"

// EmbeddedClientPort is where the embedded store serves clients.
const EmbeddedClientPort = storeconn.EmbeddedClientPort

// shutdownGrace is how long API requests in flight may go on after a
// stop signal before they are cancelled (and roll back).
const shutdownGrace = 5 * time.Second

// resyncInterval is how often the reaper looks for sandboxes whose
// namespace is gone even when nothing failed.
const resyncInterval = 30 * time.Second

// Agent is one host's meshagent: its components, wired.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	vtep    netip.Addr // this host's underlay address (VTEP, gossip, embedded store)
	mtu     int        // underlay MTU
	drivers *driver.Registry

	state   *statefile.Keeper
	nets    *networks.Manager
	recs    *sandboxes.Table
	conn    *storeconn.Conn
	members *membership.Membership
	dp      *dataplane.Dataplane // made by Run, with the kernel
	ctl     *controller.Controller

	// reap asks the reaper to look for sandboxes whose namespace is gone.
	reap chan struct{}
	wg   sync.WaitGroup
}

// New prepares an agent: it resolves the advertise address, sets up the
// drivers and loads the data dir. It starts nothing.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, reap: make(chan struct{}, 1)}
	var err error
	if a.vtep, a.mtu, err = resolveAdvertise(cfg); err != nil {
		return nil, err
	}
	a.drivers = builtin.Registry(builtin.Config{DefaultBridge: cfg.Bridge, BIP: cfg.BIP, MTU: cfg.MTU, NoICC: !cfg.ICC,
		HostRoutes: datapath.RoutedPrefixes, VTEP: a.vtep, VXLANPort: uint16(cfg.VXLANPort), UnderlayMTU: a.mtu})
	st := statefile.State{}
	if a.state, st, err = statefile.Open(cfg.DataDir, log); err != nil {
		return nil, fmt.Errorf("loading the data dir: %w", err)
	}
	a.recs = sandboxes.NewTable(st.Sandboxes, st.Endpoints)
	keys, keySync := a.gossipKeys()
	a.conn = storeconn.New(storeconn.Config{Store: cfg.Store, URL: cfg.StoreURL, NodeName: cfg.NodeName, DataDir: cfg.DataDir,
		VTEP: a.vtep, GossipPort: cfg.GossipPort, Version: Version, GlobalPools: cfg.GlobalPools, ReclaimAfter: cfg.NodeReclaimAfter,
		Trust: a.trustDir(), JoinToken: cfg.JoinToken, Keys: keySync, LeasesChanged: a.leasesChanged, Trusted: a.trusted}, log)
	a.nets = networks.NewManager(networks.NewTable(st.Networks), a.drivers, a.conn,
		networks.Config{LocalPools: cfg.LocalPools, HostRoutes: datapath.RoutedPrefixes}, a.networksChanged, log)
	id, err := a.identity()
	if err != nil {
		return nil, err
	}
	a.members = membership.New(membership.Config{NodeName: cfg.NodeName, VTEP: a.vtep, Port: cfg.GossipPort,
		Version: Version, Keys: keys, Identity: id}, st.Remote, st.Peers, membership.Hooks{
		Dirty:    func(id string) { a.dp.MarkDirty(id) },
		CaughtUp: func() { a.dp.MarkAllDirty() },
		Save:     func() { a.state.SaveAll() },
	}, log)
	a.state.SetSources(statefile.Sources{Networks: a.nets.Table.All, Records: a.recs, Cache: a.members.Saved})
	return a, nil
}

// trustDir holds the cluster CA and this host's certificates
// (agent/trust).
func (a *Agent) trustDir() trust.Dir { return trust.Dir(filepath.Join(a.cfg.DataDir, "tls")) }

// identity is what signs this host's gossip records when the cluster's
// store is the embedded one and this host has joined (agent/trust); nil
// otherwise, or before it has joined.
func (a *Agent) identity() (*gossip.Identity, error) {
	if !storeconn.UsesClusterTrust(a.cfg.Store) || !trust.Joined(a.trustDir(), nil) {
		return nil, nil
	}
	cert, key, roots, err := trust.NodeIdentity(a.trustDir(), a.cfg.NodeName)
	if err != nil {
		return nil, err
	}
	return &gossip.Identity{Cert: cert, Key: key, Roots: roots}, nil
}

// trusted: this host has just joined (or made) the cluster's CA; its
// records are signed from now on.
func (a *Agent) trusted() {
	id, err := a.identity()
	if err == nil && id != nil {
		err = a.members.SetIdentity(id)
	}
	if err != nil {
		a.log.Error("this host's gossip records cannot be signed, so its peers refuse them", "err", err)
	}
}

// gossipKeys is the keyring gossip starts with, and what keeps it equal
// to the store's: gossip-key when set (fixed); else the keyring last
// taken from the store, or — the first time — a key of this host alone,
// so that gossip talks to no one until the store's keyring has come:
// encrypted from the first packet.
func (a *Agent) gossipKeys() ([][]byte, *trust.KeySync) {
	if len(a.cfg.GossipKey) > 0 {
		return [][]byte{a.cfg.GossipKey}, nil
	}
	cached := trust.CachedKeys(a.trustDir())
	sync := trust.NewKeySync(a.trustDir(), cached, func(keys [][]byte) error { return a.members.SetKeys(keys) }, a.log)
	if cached == nil {
		return [][]byte{trust.NewGossipKey()}, sync
	}
	return cached, sync
}

// networksChanged follows a change of the networks: persist it, subscribe
// to new networks' endpoints, reprogram what changed.
func (a *Agent) networksChanged(ids ...string) {
	a.state.SaveAll()
	a.subscribe()
	for _, id := range ids {
		a.dp.MarkDirty(id)
	}
}

// leasesChanged: a network's address leases were listed; what it
// programs (and answers) may change.
func (a *Agent) leasesChanged(id string) {
	if a.dp != nil {
		a.dp.MarkDirty(id)
	}
}

// subscribe subscribes to the endpoints of every global network.
func (a *Agent) subscribe() {
	var global []string
	for _, n := range a.nets.Table.All() {
		if n.Global() {
			global = append(global, n.ID)
		}
	}
	a.members.Subscribe(global)
}

// Run runs the agent until ctx is cancelled, then shuts down and leaves
// the datapath as it is.
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("starting meshagent", "version", Version, "node", a.cfg.NodeName,
		"advertise", a.vtep, "store", a.cfg.StoreURL, "data-dir", a.cfg.DataDir)
	defer a.state.Close()
	warnings := securityWarnings(a.cfg, trust.Joined(a.trustDir(), nil))
	for _, w := range warnings {
		a.log.Warn("SECURITY: " + w)
	}
	if privateMountNamespace() {
		a.log.Warn("meshagent runs in a private mount namespace, so the sandboxes it creates under /run/netns are invisible to the host; " +
			"start it in the host's mount namespace (nsenter --net=PATH instead of ip netns exec; no PrivateMounts/PrivateTmp/ProtectSystem in its unit)")
	}
	if err := kvstore.CheckTLS(ctx, a.cfg.Store); err != nil {
		return err // a certificate mistake, said now rather than as a store that does not answer
	}
	kernel, filter, err := a.openKernel()
	if err != nil {
		return err
	}
	defer kernel.Close()
	if filter != nil {
		defer filter.Close() // the rules stay: they keep working while the agent is down
	}
	if a.cfg.IPForward {
		// Equivalent to: sysctl -w net.ipv4.ip_forward=1 (in this namespace).
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
			a.log.Warn("cannot enable IP forwarding", "err", err)
		}
	}
	if err := a.nets.EnsurePredefined(); err != nil {
		return err
	}
	if err := a.state.SaveAll(); err != nil {
		return err
	}
	if err := checkGossipPort(a.vtep, a.cfg.GossipPort); err != nil {
		return err
	}
	if err := a.members.Start(ctx); err != nil {
		return err
	}
	defer a.members.Close()

	var fw dataplane.Filter
	if filter != nil {
		fw = filter
	}
	a.dp = dataplane.New(dataplane.Config{NodeName: a.cfg.NodeName, IPTables: a.cfg.IPTables, DNS: a.cfg.DNS,
		DNSOpts: a.cfg.DNSOpts, DNSSearch: a.cfg.DNSSearch, DockerDNS: a.cfg.DockerDNS,
		VXLANPort: uint16(a.cfg.VXLANPort)}, a.nets, a.recs, verifiedRemote{a.members, a.conn, a.cfg.NodeName}, kernel, fw, a.applyFailed, a.log)
	a.ctl = controller.New(controller.Config{NodeName: a.cfg.NodeName, VTEP: a.vtep, StoreURL: a.cfg.StoreURL,
		DataDir: a.cfg.DataDir, Version: Version, GossipPort: a.cfg.GossipPort, VXLANPort: a.cfg.VXLANPort, IPTables: a.cfg.IPTables,
		Warnings: warnings},
		controller.Deps{Networks: a.nets, Records: a.recs, Store: a.conn, Members: a.members, Dataplane: a.dp, State: a.state,
			Metrics: a.newMetrics()}, a.log)
	a.ctl.Reaper().Recover()
	dns := resolver.New(a.dp.Names(), redirectDNS, firewall.UnredirectDNS, a.log)
	defer dns.Close() // sandboxes cannot resolve while the agent is down; the redirects stay
	a.dp.SetResolver(dns)
	for _, s := range a.recs.Sandboxes() {
		a.dp.SyncDNS(s.ID)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := apiserver.Listen(a.ctl, a.cfg.Hosts, a.log,
		apiserver.Options{CNI: cniserver.New(a.ctl), Debug: a.cfg.LogLevel == "debug", TLS: a.cfg.APITLS,
			Cluster: clusterAdmin{conn: a.conn, vtep: a.vtep.String(), fixedKeys: len(a.cfg.GossipKey) > 0}})
	if err != nil {
		return err
	}
	stopDocker, err := a.serveDocker(kernel, dns)
	if err != nil {
		srv.Shutdown(shutdownGrace)
		return err
	}
	a.subscribe() // to the networks known from the data dir
	a.goRun(func() { a.dp.Run(runCtx) })
	a.goRun(func() { a.conn.Run(runCtx, a.nets, a.ctl, a.members.MemberNames) })
	a.goRun(func() { a.members.Run(runCtx, a.conn) })
	a.goRun(func() { a.reapLoop(runCtx) })
	a.log.Info("meshagent ready", "api", a.cfg.Hosts)

	<-ctx.Done()
	a.log.Info("shutting down; the datapath keeps running")
	stopDocker()
	srv.Shutdown(shutdownGrace) // every handler has returned (rolled back if cancelled)
	cancel()
	a.wg.Wait()
	a.members.Quiesce() // no more saves of the remote cache from its timer
	a.state.SaveAll()
	a.conn.Close()
	a.members.Close() // last: peers drop the endpoints of a host silent for long
	return nil
}

// openKernel opens the datapath and the packet filter of the host's
// namespace; with iptables: false it removes any table an earlier run
// left and returns no filter.
func (a *Agent) openKernel() (*datapath.Datapath, *firewall.Firewall, error) {
	h, err := netns.Get()
	if err != nil {
		return nil, nil, fmt.Errorf("opening the host network namespace: %w", err)
	}
	defer h.Close()
	dp, err := datapath.New(h)
	if err != nil {
		return nil, nil, err
	}
	fw, err := firewall.New(h)
	if err != nil {
		dp.Close()
		return nil, nil, err
	}
	if a.cfg.IPTables {
		return dp, fw, nil
	}
	a.log.Warn("iptables: false: meshnet writes no packet-filter or NAT rules; sandboxes get no NAT to the outside and networks are not isolated from each other by rules")
	if err := errors.Join(fw.Remove(), fw.Close()); err != nil {
		dp.Close()
		return nil, nil, fmt.Errorf("removing the packet filter (iptables: false): %w", err)
	}
	return dp, nil, nil
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
	a.ctl.Reaper().ReapGone()
	for {
		select {
		case <-a.reap:
		case <-t.C:
		case <-ctx.Done():
			return
		}
		a.ctl.Reaper().ReapGone()
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
