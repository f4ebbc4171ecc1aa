package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// cniHost is a cluster host with a CNI configuration directory for its
// agent: one conflist per network, as a runtime's /etc/cni/net.d.
type cniHost struct {
	*cluster.Host
	bins testenv.CNIBins
	dir  string
}

func newCNIHost(t *testing.T, h *cluster.Host, bins testenv.CNIBins) *cniHost {
	dir := filepath.Join(t.TempDir(), h.Node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &cniHost{Host: h, bins: bins, dir: dir}
}

// conflist writes NAME.conflist: meshnet's plugin (network net, this
// host's socket) and the extra plugins after it.
func (h *cniHost) conflist(t *testing.T, version, name, net string, extra ...map[string]any) {
	t.Helper()
	plugin := map[string]any{"type": "meshnet", "socket": h.Socket,
		"capabilities": map[string]bool{"ips": true, "mac": true, "aliases": true}}
	if net != "" {
		plugin["network"] = net
	}
	list := map[string]any{"cniVersion": version, "name": name, "plugins": append([]map[string]any{plugin}, extra...)}
	b, _ := json.Marshal(list)
	if err := os.WriteFile(filepath.Join(h.dir, name+".conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cnitool runs the reference cnitool in the host's namespace, as a
// runtime on the host would: cnitool CMD NETWORK NETNS, with CNI_ARGS and
// CAP_ARGS when given.
func (h *cniHost) cnitool(ctx context.Context, cmd, network, netns string, env ...string) cluster.Result {
	c := exec.CommandContext(ctx, h.bins.Tool, cmd, network, netns)
	c.Env = append(os.Environ(), "CNI_PATH="+h.bins.Path, "NETCONFPATH="+h.dir, "CNI_IFNAME=eth0")
	c.Env = append(c.Env, env...)
	return runIn(h.NS, c)
}

// runIn runs cmd to completion from a thread in ns.
func runIn(ns *nshost.NS, cmd *exec.Cmd) cluster.Result {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := ns.Do(cmd.Start)
	if err == nil {
		err = cmd.Wait()
	}
	r := cluster.Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Stderr += err.Error()
	}
	return r
}

// addResult decodes the result cnitool printed for ADD.
func addResult(t *testing.T, r cluster.Result) *current.Result {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("cnitool add: %s", r)
	}
	res, err := current.NewResult([]byte(r.Stdout))
	if err != nil {
		t.Fatalf("cnitool add printed %q: %v", r.Stdout, err)
	}
	out, err := current.GetResult(res)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// libcni runs CMD (add, check, del, status) of network NAME's conflist
// through libcni, as a runtime in the host's namespace would, and returns
// its error. The container id is the namespace's name.
func (h *cniHost) libcni(ctx context.Context, cmd, name string, ns *nshost.NS) error {
	list, err := libcni.LoadConfList(h.dir, name)
	if err != nil {
		return err
	}
	cninet := libcni.NewCNIConfig(filepath.SplitList(h.bins.Path), nil)
	rt := &libcni.RuntimeConf{ContainerID: ns.Name, NetNS: ns.Path(), IfName: "eth0"}
	return h.NS.Do(func() error {
		switch cmd {
		case "add":
			_, err = cninet.AddNetworkList(ctx, list, rt)
		case "del":
			err = cninet.DelNetworkList(ctx, list, rt)
		case "status":
			err = cninet.GetStatusNetworkList(ctx, list)
		default:
			err = fmt.Errorf("unknown command %s", cmd)
		}
		return err
	})
}

// cniError checks that err is the CNI error object of the code whose
// message is one sentence containing want.
func cniError(t *testing.T, what string, err error, code uint, want string) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: %v, want CNI error %d", what, err, code)
		return
	}
	if e.Code != code || !strings.Contains(e.Msg, want) || strings.ContainsAny(e.Msg, "\n") || strings.Contains(e.Msg, "goroutine") {
		t.Errorf("%s: error %d %q, want %d with one line containing %q", what, e.Code, e.Msg, code, want)
	}
}

// failed checks that a cnitool run failed with one line on stderr
// containing want.
func failed(t *testing.T, what string, r cluster.Result, want string) {
	t.Helper()
	line := strings.TrimSpace(r.Stderr)
	if r.Code == 0 || !strings.Contains(line, want) || strings.Contains(line, "\n") {
		t.Errorf("%s: %s, want a failure saying %q", what, r, want)
	}
}

// eth0 is the address of eth0 in ns, or the zero Addr.
func eth0(t *testing.T, ns *nshost.NS) netip.Prefix {
	t.Helper()
	h, err := ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		return netip.Prefix{}
	}
	addrs, _ := h.AddrList(l, 2 /* AF_INET */)
	if len(addrs) == 0 {
		return netip.Prefix{}
	}
	a, _ := netip.AddrFromSlice(addrs[0].IP.To4())
	bits, _ := addrs[0].Mask.Size()
	return netip.PrefixFrom(a, bits)
}

func newContainerNS(t *testing.T, c *cluster.Cluster, name string) *nshost.NS {
	t.Helper()
	ns, err := nshost.NewNS(c.Name(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// The CNI plugin driven by the reference cnitool, as a runtime drives it:
// ADD on two hosts gives each namespace an address of the overlay network
// (and the result says so), traffic crosses between them, CHECK and
// STATUS pass; ADD twice is refused, DEL twice succeeds, GC releases what
// the runtime no longer has; an unknown network and a stopped agent get
// one clear sentence with the right code; chained before the reference
// portmap plugin, a published port answers from outside.
func TestCNIPlugin(t *testing.T) {
	c := newCluster(t, cluster.StoreEmbedded, 2)
	ctx := testCtx(t)
	bins, err := testenv.CNIBinaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n1, n2 := newCNIHost(t, c.Host(0), bins), newCNIHost(t, c.Host(1), bins)
	ctl(t, n1.Host, "network", "create", "-d", "overlay", "--subnet", "10.77.0.0/24", "multi")
	for _, h := range []*cniHost{n1, n2} {
		h.conflist(t, "1.1.0", "multi", "")
		h.conflist(t, "1.1.0", "nosuch", "")
	}
	c1, c2 := newContainerNS(t, c, "c1"), newContainerNS(t, c, "c2")

	r1 := addResult(t, n1.cnitool(ctx, "add", "multi", c1.Path()))
	r2 := addResult(t, n2.cnitool(ctx, "add", "multi", c2.Path()))
	subnet := netip.MustParsePrefix("10.77.0.0/24")
	for _, tc := range []struct {
		res *current.Result
		ns  *nshost.NS
	}{{r1, c1}, {r2, c2}} {
		if len(tc.res.Interfaces) != 1 || tc.res.Interfaces[0].Name != "eth0" || tc.res.Interfaces[0].Sandbox != tc.ns.Path() ||
			tc.res.Interfaces[0].Mac == "" || tc.res.Interfaces[0].Mtu == 0 {
			t.Errorf("result interfaces: %v", tc.res.Interfaces)
		}
		if len(tc.res.IPs) != 1 || tc.res.IPs[0].Interface == nil || *tc.res.IPs[0].Interface != 0 ||
			tc.res.IPs[0].Gateway.String() != "10.77.0.1" {
			t.Fatalf("result IPs: %v", tc.res.IPs)
		}
		got := eth0(t, tc.ns)
		if want := tc.res.IPs[0].Address.String(); got.String() != want || !subnet.Contains(got.Addr()) {
			t.Errorf("eth0 in %s has %s, the result says %s (subnet %s)", tc.ns.Name, got, want, subnet)
		}
		if len(tc.res.Routes) != 1 || tc.res.Routes[0].Dst.String() != "0.0.0.0/0" {
			t.Errorf("result routes: %v", tc.res.Routes)
		}
		if strings.Join(tc.res.DNS.Nameservers, ",") != "127.0.0.11" {
			t.Errorf("result DNS: %+v, want the embedded DNS", tc.res.DNS)
		}
	}
	ip2 := eth0(t, c2).Addr()
	serveWhoAmIOn(t, c2, 7000)
	if got, err := c1.AskWhoAmI(ctx, netip.AddrPortFrom(ip2, 7000).String()); err != nil || got != eth0(t, c1).Addr().String() {
		t.Errorf("c1 on n1 → c2 on n2 over TCP: %q, %v", got, err)
	}
	if _, err := c1.Ping(ctx, ip2, 1, 0, guard); err != nil {
		t.Errorf("c1 on n1 → c2 on n2, ping: %v", err)
	}

	if r := n1.cnitool(ctx, "check", "multi", c1.Path()); r.Code != 0 {
		t.Errorf("cnitool check: %s", r)
	}
	if r := n1.cnitool(ctx, "status", "multi", c1.Path()); r.Code != 0 {
		t.Errorf("cnitool status: %s", r)
	}
	// What agentctl shows of them: the container id.
	sbs, err := n1.Client().SandboxList(ctx)
	if err != nil || len(sbs) != 1 || !strings.HasPrefix(sbs[0].ContainerID, "cnitool-") || sbs[0].NetNS != c1.Path() {
		t.Errorf("sandboxes of n1: %+v (%v), want c1's CNI sandbox", sbs, err)
	}
	if ls := ctl(t, n1.Host, "sandbox", "ls"); !strings.Contains(ls, "CONTAINER ID") || !strings.Contains(ls, "cnitool-") {
		t.Errorf("sandbox ls:\n%s", ls)
	}
	if n := inspectNetwork(t, n1.Host, "multi"); !containsContainer(n, sbs) {
		t.Errorf("network inspect multi shows no container id: %+v", n.Containers)
	}

	failed(t, "ADD twice", n1.cnitool(ctx, "add", "multi", c1.Path()), "already has an interface eth0")
	c3 := newContainerNS(t, c, "c3")
	if err := n1.libcni(ctx, "add", "multi", c3); err != nil {
		t.Fatal(err)
	}
	cniError(t, "ADD twice", n1.libcni(ctx, "add", "multi", c3), 100, "already has an interface eth0")
	if err := n1.libcni(ctx, "del", "multi", c3); err != nil {
		t.Fatal(err)
	}
	cniError(t, "ADD on an unknown network", n1.libcni(ctx, "add", "nosuch", c3), types.ErrInvalidNetworkConfig, "network nosuch not found")
	if eth0(t, c3).IsValid() {
		t.Error("a refused ADD left an interface behind")
	}
	failed(t, "ADD with an address outside the subnet", n1.cnitool(ctx, "add", "multi", c3.Path(), `CAP_ARGS={"ips":["10.99.0.5/24"]}`), "10.99.0.5")
	failed(t, "CHECK of a namespace never added", n1.cnitool(ctx, "check", "multi", c3.Path()), "no interface eth0")

	// A requested address and MAC (the ips and mac capabilities).
	r3 := addResult(t, n1.cnitool(ctx, "add", "multi", c3.Path(), `CAP_ARGS={"ips":["10.77.0.50/24"],"mac":"02:00:00:aa:bb:cc"}`))
	if r3.IPs[0].Address.String() != "10.77.0.50/24" || r3.Interfaces[0].Mac != "02:00:00:aa:bb:cc" {
		t.Errorf("requested address and MAC: %v %v", r3.IPs, r3.Interfaces)
	}
	if _, err := c2.Ping(ctx, netip.MustParseAddr("10.77.0.50"), 1, 0, guard); err != nil {
		t.Errorf("c2 on n2 → c3 (own MAC) on n1: %v", err)
	}

	for i := range 2 {
		if r := n1.cnitool(ctx, "del", "multi", c1.Path()); r.Code != 0 {
			t.Errorf("cnitool del #%d: %s", i+1, r)
		}
	}
	if eth0(t, c1).IsValid() {
		t.Error("eth0 is still in c1 after DEL")
	}
	// The address went back: asked for explicitly, it is granted again.
	again := addResult(t, n1.cnitool(ctx, "add", "multi", c1.Path(), `CAP_ARGS={"ips":["`+r1.IPs[0].Address.String()+`"]}`))
	if again.IPs[0].Address.String() != r1.IPs[0].Address.String() {
		t.Errorf("the address of a DELeted attachment: %v", again.IPs)
	}

	// GC through libcni (cnitool gives no valid attachments): c1 stays,
	// c3 goes.
	list, err := libcni.LoadConfList(n1.dir, "multi")
	if err != nil {
		t.Fatal(err)
	}
	valid := []types.GCAttachment{{ContainerID: containerOf(t, n1, c1.Path()), IfName: "eth0"}}
	cninet := libcni.NewCNIConfig(strings.Split(bins.Path, ":"), nil)
	if err := n1.NS.Do(func() error { return cninet.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid}) }); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if !eth0(t, c1).IsValid() || eth0(t, c3).IsValid() {
		t.Errorf("after GC keeping c1: c1 eth0 %v, c3 eth0 %v", eth0(t, c1), eth0(t, c3))
	}
	if r := n1.cnitool(ctx, "gc", "multi", c1.Path()); r.Code != 0 {
		t.Errorf("cnitool gc: %s", r)
	}
	if sbs, _ := n1.Client().SandboxList(ctx); len(sbs) != 0 {
		t.Errorf("after GC with no valid attachments: %+v", sbs)
	}

	// A stopped agent: ADD says so, with "try again later"; STATUS fails
	// with 50.
	if err := n2.Stop(); err != nil {
		t.Fatal(err)
	}
	c4 := newContainerNS(t, c, "c4")
	unreachable := "cannot reach meshagent at " + n2.Socket + ": is it running?"
	failed(t, "cnitool add with the agent stopped", n2.cnitool(ctx, "add", "multi", c4.Path()), unreachable)
	cniError(t, "ADD with the agent stopped", n2.libcni(ctx, "add", "multi", c4), types.ErrTryAgainLater, unreachable)
	cniError(t, "STATUS with the agent stopped", n2.libcni(ctx, "status", "multi", c4), 50, unreachable)
	if err := n2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r := n2.cnitool(ctx, "del", "multi", c2.Path()); r.Code != 0 {
		t.Errorf("cnitool del after a restart: %s", r)
	}

	// A namespace deleted without DEL (a runtime that crashed): the agent
	// notices (here at the next apply of the network, else within its
	// resync) and gives the address back.
	c6 := newContainerNS(t, c, "c6")
	r6 := addResult(t, n1.cnitool(ctx, "add", "multi", c6.Path()))
	if err := c6.Close(); err != nil {
		t.Fatal(err)
	}
	c7 := newContainerNS(t, c, "c7")
	addResult(t, n1.cnitool(ctx, "add", "multi", c7.Path()))
	if err := eventually(ctx, func() error {
		sbs, err := n1.Client().SandboxList(ctx)
		for _, s := range sbs {
			if s.NetNS == c6.Path() {
				return fmt.Errorf("the sandbox of a deleted namespace is still there: %+v", s)
			}
		}
		return err
	}); err != nil {
		t.Error(err)
	}
	c8 := newContainerNS(t, c, "c8")
	if r := addResult(t, n1.cnitool(ctx, "add", "multi", c8.Path(), `CAP_ARGS={"ips":["`+r6.IPs[0].Address.String()+`"]}`)); r.IPs[0].Address.String() != r6.IPs[0].Address.String() {
		t.Errorf("the address of a deleted namespace: %v", r.IPs)
	}

	// An older runtime's configuration gets its version of the result.
	n1.conflist(t, "0.4.0", "old", "multi")
	c9 := newContainerNS(t, c, "c9")
	if r := n1.cnitool(ctx, "add", "old", c9.Path()); r.Code != 0 || !strings.Contains(r.Stdout, `"cniVersion": "0.4.0"`) {
		t.Errorf("ADD with cniVersion 0.4.0: %s", r)
	}
	if r := n1.cnitool(ctx, "del", "old", c9.Path()); r.Code != 0 {
		t.Errorf("DEL with cniVersion 0.4.0: %s", r)
	}

	// Chained before the reference portmap plugin: it gets meshnet's
	// result and publishes a port to the container's address.
	n1.conflist(t, "1.1.0", "chain", "multi", map[string]any{"type": "portmap", "backend": "nftables",
		"capabilities": map[string]bool{"portMappings": true}})
	c5 := newContainerNS(t, c, "c5")
	r5 := addResult(t, n1.cnitool(ctx, "add", "chain", c5.Path(), `CAP_ARGS={"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]}`))
	serveWhoAmIOn(t, c5, 80)
	out, err := c.AddOutside()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.AskWhoAmI(ctx, netip.AddrPortFrom(n1.Addr.Addr(), 18080).String()); err != nil {
		t.Errorf("outside → n1:18080 published by portmap after meshnet (%v): %v", r5.IPs, err)
	}
	if r := n1.cnitool(ctx, "check", "chain", c5.Path(), `CAP_ARGS={"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]}`); r.Code != 0 {
		t.Errorf("cnitool check of the chain: %s", r)
	}
	if r := n1.cnitool(ctx, "del", "chain", c5.Path(), `CAP_ARGS={"portMappings":[{"hostPort":18080,"containerPort":80,"protocol":"tcp"}]}`); r.Code != 0 {
		t.Errorf("cnitool del of the chain: %s", r)
	}
	if _, err := out.AskWhoAmI(ctx, netip.AddrPortFrom(n1.Addr.Addr(), 18080).String()); err == nil {
		t.Error("the port still answers after DEL")
	}
}

// containerOf is the container id cnitool uses for a namespace, as the
// agent recorded it.
func containerOf(t *testing.T, h *cniHost, netns string) string {
	t.Helper()
	sbs, err := h.Client().SandboxList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sbs {
		if s.NetNS == netns {
			return s.ContainerID
		}
	}
	t.Fatalf("no sandbox of %s on %s", netns, h.Node)
	return ""
}

func containsContainer(n api.Network, sbs []api.Sandbox) bool {
	for _, r := range n.Containers {
		for _, s := range sbs {
			if r.ContainerID != "" && r.ContainerID == s.ContainerID {
				return true
			}
		}
	}
	return false
}
