package e2e

// BenchmarkJoinVsFlannel: how soon a host that joins a running cluster
// has a sandbox that a sandbox on an existing host reaches, for meshnet
// and for flannel (flanneld of testenv.FlannelVer, its vxlan backend, its
// etcd subnet manager) side by side: the same run, the same underlay,
// the same etcd server (flannel under a prefix of its own), joins
// interleaved (and their order alternated) so that noise hits both alike.
//
//	go test -run XXX -bench JoinVsFlannel -benchtime 30x ./e2e/
//
// (about a minute once flanneld is cached; its first build takes a few
// minutes). MESHNET_BENCH_VERBOSE=1 logs every join.
//
// Each join adds a fresh host to a two-host cluster of its kind. The clock
// starts just before the new host's agent process (meshagent or flanneld)
// is started and stops when a TCP connection from the existing host's
// sandbox to a sandbox on the new host is answered (connect, then one
// echo). In between, as a user or an orchestrator would, the benchmark
// waits until the agent can take work (meshnet: GET /info says the store
// is usable; flannel: the subnet file is written), polling every
// readyPoll, then creates the sandbox (meshnet: the API's sandbox create;
// flannel: what its CNI plugin, through the reference bridge plugin,
// does: the bridge cni0 with the subnet's first address, a veth into a
// new namespace with the next, a default route via the bridge, then a
// wait for the bridge port to be up), and probes it every probeEvery.
// The joined host's agent is then stopped (its sandbox removed, flannel's
// lease revoked), so every join finds two hosts. The joined hosts'
// namespaces stay, idle, until the end: the underlay's addresses allow
// about 120 joins in one run.
//
// Where the emulation differs from the real thing it favours flannel:
// its sandbox is made in-process by netlink (no plugin processes, no
// IPAM files) and the bridge port is polled every half millisecond.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

const (
	// probeEvery is how often a new TCP probe starts while waiting for a
	// sandbox to answer; each may take probeWait, so several overlap and
	// a probe whose SYN went nowhere does not hide a path that is ready.
	probeEvery = 2 * time.Millisecond
	probeWait  = 25 * time.Millisecond
	// readyPoll is how often the benchmark asks whether a starting agent
	// can take work.
	readyPoll = 2 * time.Millisecond

	joinMeshNet    = "10.231.0.0/16" // meshnet's overlay network
	joinFlannelNet = "10.232.0.0/16" // flannel's network
)

// joinSample is one join: from the agent's start until its agent could
// take work, and until its sandbox answered.
type joinSample struct{ ready, reached time.Duration }

func BenchmarkJoinVsFlannel(b *testing.B) {
	ctx := context.Background()
	flanneld, err := testenv.FlannelBinary(ctx) // before the cluster: a cold build takes minutes
	if err != nil {
		b.Fatal(err)
	}
	c := cluster.NewT(b, cluster.Options{Hosts: 2, Store: cluster.StoreEtcd, Tag: "fvj"})
	n1 := c.Host(0)
	createNetwork(ctx, b, n1, "multi", joinMeshNet)
	meshFrom := openSandbox(ctx, b, c, n1, "m0")

	fl := newFlannel(b, c, flanneld)
	f1, err := fl.startHost(ctx, "f1")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := fl.startHost(ctx, "f2"); err != nil {
		b.Fatal(err)
	}
	flFrom, _, err := f1.addSandbox(c.Name("fs0"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { flFrom.Close() })

	joins := map[string]func(i int) (joinSample, error){
		"meshnet": func(i int) (joinSample, error) { return joinMeshnet(ctx, c, meshFrom, i) },
		"flannel": func(i int) (joinSample, error) { return fl.join(ctx, flFrom, i) },
	}
	samples := map[string][]joinSample{}
	i := 0
	for b.Loop() {
		order := []string{"meshnet", "flannel"}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, kind := range order {
			s, err := joins[kind](i)
			if err != nil {
				b.Fatalf("%s join %d: %v", kind, i, err)
			}
			samples[kind] = append(samples[kind], s)
			if os.Getenv("MESHNET_BENCH_VERBOSE") != "" {
				b.Logf("%s join %d: ready %s, reached %s", kind, i, s.ready, s.reached)
			}
		}
		i++
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	reached := map[string][]time.Duration{}
	for kind, ss := range samples {
		var ready []time.Duration
		for _, s := range ss {
			ready = append(ready, s.ready)
			reached[kind] = append(reached[kind], s.reached)
		}
		b.ReportMetric(ms(percentile(reached[kind], 0.5)), kind+"-p50-ms")
		b.ReportMetric(ms(percentile(reached[kind], 0.9)), kind+"-p90-ms")
		b.ReportMetric(ms(percentile(ready, 0.5)), kind+"-ready-p50-ms")
	}
	for _, p := range []float64{0.5, 0.9} {
		ratio := float64(percentile(reached["meshnet"], p)) / float64(percentile(reached["flannel"], p))
		b.ReportMetric(ratio, fmt.Sprintf("ratio-p%d", int(p*100)))
	}
	b.ReportMetric(0, "ns/op")
}

// openSandbox creates a meshnet sandbox on h, on network multi, and opens
// its namespace until the benchmark ends.
func openSandbox(ctx context.Context, b *testing.B, c *cluster.Cluster, h *cluster.Host, short string) *nshost.NS {
	b.Helper()
	name := c.Name(short)
	if _, err := createSandboxAPI(ctx, h, "multi", name); err != nil {
		b.Fatal(err)
	}
	ns, err := nshost.OpenNS(name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Close() })
	return ns
}

// joinMeshnet adds a host to the cluster, starts its agent, creates a
// sandbox there once the agent can take work, and times until the sandbox
// answers from namespace from; then it removes the sandbox and stops the
// agent.
func joinMeshnet(ctx context.Context, c *cluster.Cluster, from *nshost.NS, i int) (s joinSample, err error) {
	h, err := c.AddBareHost("")
	if err != nil {
		return s, err
	}
	started, err := h.Launch()
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, h.Stop()) }()
	ctx, cancel := context.WithTimeout(ctx, guard)
	defer cancel()
	for {
		info, err := h.Info(ctx)
		if err == nil && info.StoreStatus == "ok" {
			break
		}
		if !h.Running() {
			return s, fmt.Errorf("meshagent on %s exited:\n%s", h.Node, cluster.Tail(h.LogPath, 20))
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("meshagent on %s not ready: %v", h.Node, err)
		case <-time.After(readyPoll):
		}
	}
	s.ready = time.Since(started)
	name := c.Name("m" + strconv.Itoa(i+1))
	ip, err := createSandboxAPI(ctx, h, "multi", name)
	if err != nil {
		return s, err
	}
	defer func() {
		cl := h.Client()
		defer cl.Close()
		err = errors.Join(err, cl.SandboxRemove(context.Background(), name, true))
	}()
	answered, err := answerFrom(ctx, from, name, ip)
	s.reached = answered.Sub(started)
	return s, err
}

// answerFrom serves TCP echo in the sandbox namespace name at ip and
// returns when a probe from namespace from was first answered.
func answerFrom(ctx context.Context, from *nshost.NS, name string, ip netip.Addr) (time.Time, error) {
	ns, err := nshost.OpenNS(name)
	if err != nil {
		return time.Time{}, err
	}
	defer ns.Close()
	e, err := ns.ServeEcho("tcp", "0.0.0.0:"+strconv.Itoa(echoPort))
	if err != nil {
		return time.Time{}, err
	}
	defer e.Close()
	return firstAnswer(ctx, from, net.JoinHostPort(ip.String(), strconv.Itoa(echoPort)))
}

// firstAnswer starts a TCP probe of addr from namespace from (connect,
// then one echo) every probeEvery, each given probeWait, and returns the
// time the first probe was answered.
func firstAnswer(ctx context.Context, from *nshost.NS, addr string) (time.Time, error) {
	var probes sync.WaitGroup
	defer probes.Wait()
	ctx, cancel := context.WithTimeout(ctx, guard)
	defer cancel()
	answered := make(chan time.Time, 1)
	var mu sync.Mutex
	var last error // guarded by mu
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		probes.Go(func() {
			if _, err := echo(ctx, from, "tcp", addr, probeWait); err != nil {
				mu.Lock()
				last = err
				mu.Unlock()
				return
			}
			select {
			case answered <- time.Now():
			default:
			}
		})
		select {
		case t := <-answered:
			return t, nil
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			return time.Time{}, fmt.Errorf("no answer from %s within %s: %v", addr, guard, last)
		case <-tick.C:
		}
	}
}

// flannel runs flanneld on hosts of a cluster's underlay, with the
// cluster's etcd server as its subnet manager under a prefix of its own.
type flannel struct {
	c      *cluster.Cluster
	bin    string
	prefix string // etcd prefix, /coreos.com/network-PREFIX
	dir    string // per host: flanneld.log, subnet.env
	etcd   *clientv3.Client

	mu    sync.Mutex
	hosts []*flannelHost // guarded by mu; every flanneld started
}

// flannelHost is a host running flanneld, with the lease it was given.
type flannelHost struct {
	*cluster.Host
	fl              *flannel
	proc            *testenv.Process
	log, subnetFile string
	subnet          netip.Prefix // FLANNEL_SUBNET: the bridge's address and the host's subnet
	mtu             int          // FLANNEL_MTU
}

// newFlannel writes flannel's network configuration into the cluster's
// etcd; when the benchmark ends, every flanneld is stopped and every key
// under the prefix is deleted, leases revoked.
func newFlannel(b *testing.B, c *cluster.Cluster, bin string) *flannel {
	b.Helper()
	fl := &flannel{c: c, bin: bin, prefix: "/coreos.com/network-" + c.Prefix, dir: b.TempDir()}
	// The store's namespace is the cluster's own; dial etcd from a host
	// on the underlay (n1), as flanneld does.
	dialer := c.Host(0)
	var err error
	fl.etcd, err = clientv3.New(clientv3.Config{
		Endpoints:   []string{"http://" + net.JoinHostPort(cluster.StoreAddr.String(), "2379")},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.Dial(ctx, "tcp", addr)
		})},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if b.Failed() {
			fl.dumpLogs(b.Logf)
		}
		if err := fl.close(); err != nil {
			b.Error(err)
		}
	})
	cfg := fmt.Sprintf(`{"Network": %q, "Backend": {"Type": "vxlan"}}`, joinFlannelNet)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := fl.etcd.Put(ctx, fl.prefix+"/config", cfg); err != nil {
		b.Fatalf("writing flannel's configuration: %v", err)
	}
	return fl
}

// dumpLogs passes the tail of every flanneld's log to logf.
func (fl *flannel) dumpLogs(logf func(format string, args ...any)) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for _, fh := range fl.hosts {
		logf("--- last lines of flanneld %s log (%s):\n%s", fh.Node, fh.log, cluster.Tail(fh.log, 30))
	}
}

// close stops every flanneld still running and deletes flannel's keys.
func (fl *flannel) close() error {
	fl.mu.Lock()
	hosts := fl.hosts
	fl.hosts = nil
	fl.mu.Unlock()
	var errs []error
	for _, fh := range hosts {
		if !fh.proc.Stop(10 * time.Second) {
			errs = append(errs, fmt.Errorf("flanneld on %s did not exit within 10s of SIGTERM", fh.Node))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := fl.etcd.Get(ctx, fl.prefix+"/", clientv3.WithPrefix())
	if err == nil {
		for _, kv := range resp.Kvs {
			if kv.Lease != 0 {
				if _, err := fl.etcd.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil {
					errs = append(errs, fmt.Errorf("revoking the lease of %s: %w", kv.Key, err))
				}
			}
		}
		_, err = fl.etcd.Delete(ctx, fl.prefix+"/", clientv3.WithPrefix())
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("deleting flannel's keys: %w", err))
	}
	return errors.Join(append(errs, fl.etcd.Close())...)
}

// start adds a host named name to the underlay and starts flanneld on it;
// it returns the time just before the process started.
func (fl *flannel) start(name string) (*flannelHost, time.Time, error) {
	h, err := fl.c.AddBareHost(name)
	if err != nil {
		return nil, time.Time{}, err
	}
	dir := filepath.Join(fl.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, time.Time{}, err
	}
	fh := &flannelHost{Host: h, fl: fl, log: filepath.Join(dir, "flanneld.log"), subnetFile: filepath.Join(dir, "subnet.env")}
	args := []string{
		"--etcd-endpoints", "http://" + net.JoinHostPort(cluster.StoreAddr.String(), "2379"),
		"--etcd-prefix", fl.prefix,
		"--iface", nshost.HostDev,
		"--subnet-file", fh.subnetFile, // processes of all hosts share /run
		"--ip-masq=false",
	}
	started := time.Now()
	fh.proc, err = testenv.StartProcess(fl.bin, args, testenv.ProcessOptions{Log: fh.log, NS: h.NS})
	if err != nil {
		return nil, time.Time{}, err
	}
	fl.mu.Lock()
	fl.hosts = append(fl.hosts, fh)
	fl.mu.Unlock()
	return fh, started, nil
}

// waitLease waits until flanneld has written its subnet file, and reads it.
func (fh *flannelHost) waitLease(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, guard)
	defer cancel()
	for {
		b, err := os.ReadFile(fh.subnetFile) // written whole, by rename
		if err == nil {
			return fh.parseSubnetFile(string(b))
		}
		select {
		case <-fh.proc.Exited():
			return fmt.Errorf("flanneld on %s exited with status %d:\n%s", fh.Node, fh.proc.ExitCode(), cluster.Tail(fh.log, 20))
		case <-ctx.Done():
			return fmt.Errorf("flanneld on %s wrote no subnet file within %s:\n%s", fh.Node, guard, cluster.Tail(fh.log, 20))
		case <-time.After(readyPoll):
		}
	}
}

func (fh *flannelHost) parseSubnetFile(env string) error {
	for _, line := range strings.Split(env, "\n") {
		k, v, _ := strings.Cut(line, "=")
		var err error
		switch k {
		case "FLANNEL_SUBNET":
			fh.subnet, err = netip.ParsePrefix(v)
		case "FLANNEL_MTU":
			fh.mtu, err = strconv.Atoi(v)
		}
		if err != nil {
			return fmt.Errorf("subnet file of %s: %s: %w", fh.Node, line, err)
		}
	}
	if !fh.subnet.IsValid() || fh.mtu == 0 {
		return fmt.Errorf("subnet file of %s lacks FLANNEL_SUBNET or FLANNEL_MTU: %q", fh.Node, env)
	}
	return nil
}

// startHost starts flanneld on a new host and waits for its lease.
func (fl *flannel) startHost(ctx context.Context, name string) (*flannelHost, error) {
	fh, _, err := fl.start(name)
	if err != nil {
		return nil, err
	}
	return fh, fh.waitLease(ctx)
}

// stop stops flanneld and revokes its lease, as if the host had left:
// the other hosts drop their routes to it.
func (fh *flannelHost) stop() error {
	var errs []error
	if !fh.proc.Stop(10 * time.Second) {
		errs = append(errs, fmt.Errorf("flanneld on %s did not exit within 10s of SIGTERM", fh.Node))
	}
	if fh.subnet.IsValid() {
		sn := fh.subnet.Masked()
		key := fh.fl.prefix + "/subnets/" + sn.Addr().String() + "-" + strconv.Itoa(sn.Bits())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := fh.fl.etcd.Get(ctx, key)
		switch {
		case err != nil:
		case len(resp.Kvs) == 0:
			err = fmt.Errorf("no lease %s in etcd", key)
		case resp.Kvs[0].Lease != 0:
			_, err = fh.fl.etcd.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
		default:
			_, err = fh.fl.etcd.Delete(ctx, key)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("revoking the lease of %s: %w", fh.Node, err))
		}
	}
	return errors.Join(errs...)
}

// join adds a host running flanneld, makes a sandbox on it once it has
// its lease, and times until the sandbox answers from namespace from; then
// it deletes the sandbox and stops flanneld.
func (fl *flannel) join(ctx context.Context, from *nshost.NS, i int) (s joinSample, err error) {
	fh, started, err := fl.start("fj" + strconv.Itoa(i+1))
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, fh.stop()) }()
	if err := fh.waitLease(ctx); err != nil {
		return s, err
	}
	s.ready = time.Since(started)
	name := fl.c.Name("fs" + strconv.Itoa(i+1))
	ns, ip, err := fh.addSandbox(name)
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, ns.Close()) }()
	answered, err := answerFrom(ctx, from, name, ip)
	s.reached = answered.Sub(started)
	return s, err
}

// addSandbox makes a sandbox namespace named name on the host as
// flannel's CNI plugin does through the reference bridge plugin
// (isGateway, isDefaultGateway, the MTU of the subnet file): the bridge
// cni0 holding the subnet's first address, a veth into the sandbox with
// the next one, a default route via the bridge, and forwarding on in the
// host. It returns the sandbox's namespace (deleted by its Close) and
// address.
// Equivalent to: `ip -n HOST link add cni0 type bridge; ip -n HOST addr
// add GW/LEN dev cni0; ip -n HOST link add veth0 master cni0 type veth
// peer name eth0 netns NAME; ip -n NAME addr add GW+1/LEN dev eth0;
// ip -n NAME route add default via GW; sysctl net.ipv4.ip_forward=1` (in
// HOST), each link up.
func (fh *flannelHost) addSandbox(name string) (ns *nshost.NS, ip netip.Addr, err error) {
	gw := fh.subnet.Addr()
	ip = gw.Next()
	ns, err = nshost.NewNS(name)
	if err != nil {
		return nil, ip, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ns.Close())
		}
	}()
	hnl, err := fh.Netlink()
	if err != nil {
		return nil, ip, err
	}
	defer hnl.Close()
	snl, err := ns.Netlink()
	if err != nil {
		return nil, ip, err
	}
	defer snl.Close()
	prefixed := func(a netip.Addr) *netlink.Addr {
		return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(fh.subnet.Bits(), 32)}}
	}

	br, err := hnl.LinkByName("cni0")
	if err != nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = "cni0", fh.mtu
		br = &netlink.Bridge{LinkAttrs: attrs}
		if err := hnl.LinkAdd(br); err != nil {
			return nil, ip, fmt.Errorf("adding cni0 on %s: %w", fh.Node, err)
		}
		if err := hnl.AddrAdd(br, prefixed(gw)); err != nil {
			return nil, ip, fmt.Errorf("adding %s to cni0 on %s: %w", gw, fh.Node, err)
		}
		if err := hnl.LinkSetUp(br); err != nil {
			return nil, ip, fmt.Errorf("setting cni0 up on %s: %w", fh.Node, err)
		}
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.MasterIndex = "veth"+strconv.Itoa(int(ip.As4()[3])), fh.mtu, br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns.Handle()))}
	if err := hnl.LinkAdd(veth); err != nil {
		return nil, ip, fmt.Errorf("adding a veth to %s on %s: %w", name, fh.Node, err)
	}
	if err := hnl.LinkSetUp(veth); err != nil {
		return nil, ip, fmt.Errorf("setting %s up on %s: %w", attrs.Name, fh.Node, err)
	}
	eth0, err := snl.LinkByName("eth0")
	if err != nil {
		return nil, ip, fmt.Errorf("reading eth0 of %s: %w", name, err)
	}
	if err := snl.AddrAdd(eth0, prefixed(ip)); err != nil {
		return nil, ip, fmt.Errorf("adding %s to %s: %w", ip, name, err)
	}
	if err := snl.LinkSetUp(eth0); err != nil {
		return nil, ip, fmt.Errorf("setting eth0 of %s up: %w", name, err)
	}
	if err := snl.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
		return nil, ip, fmt.Errorf("adding a default route via %s to %s: %w", gw, name, err)
	}
	err = fh.Do(func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644) })
	if err != nil {
		return nil, ip, fmt.Errorf("enabling forwarding on %s: %w", fh.Node, err)
	}
	return ns, ip, waitOperUp(hnl, attrs.Name)
}

// waitOperUp waits until the link's operational state is up, as the
// bridge plugin waits for its host-side veth before it returns: until
// the kernel's link watcher has caught up, the bridge does not forward
// to the port, and a first ARP request lost there costs a second
// (the ARP retransmit time). It polls every half millisecond, where the
// plugin polls after 0, 50 and 500 ms, so as not to make flannel slower
// than it is.
func waitOperUp(nl *netlink.Handle, name string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := nl.LinkByName(name)
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is %s, not up, after 5s", name, l.Attrs().OperState)
		}
		time.Sleep(500 * time.Microsecond)
	}
}
