package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/cluster"
)

// forEachStore runs fn as a subtest per store named by MESHNET_TEST_STORES
// (default every store), one after the other: each starts a cluster of
// its own, and two cores do not run several well at once.
func forEachStore(t *testing.T, fn func(t *testing.T, store string)) {
	names := os.Getenv("MESHNET_TEST_STORES")
	if names == "" {
		names = testenv.AllStores
	}
	for _, store := range strings.Split(names, ",") {
		t.Run(store, func(t *testing.T) { fn(t, store) })
	}
}

// newCluster starts a cluster for the test (closed when it ends).
func newCluster(t *testing.T, store string, hosts int) *cluster.Cluster {
	t.Helper()
	return cluster.NewT(t, cluster.Options{Hosts: hosts, Store: store, Tag: "e2e"})
}

// guard bounds waiting for something that should happen: a guard
// against hangs, not a performance limit.
const guard = time.Minute

// eventually retries fn until it returns nil or the guard passes, and
// returns its last error.
func eventually(ctx context.Context, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, guard)
	defer cancel()
	return check.Retry(ctx, fn)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ctl runs agentctl on h and fails the test unless it succeeds.
func ctl(t *testing.T, h *cluster.Host, args ...string) string {
	t.Helper()
	r := h.AgentCtl(args...)
	if r.Code != 0 {
		t.Fatalf("agentctl %s on %s: %s", strings.Join(args, " "), h.Node, r)
	}
	return r.Stdout
}

// refused checks that agentctl ARGS failed as the contract says: a
// non-zero exit and one clear line on stderr, no stack trace, no raw
// decoder text. It returns that line.
func refused(t *testing.T, h *cluster.Host, r cluster.Result, args ...string) string {
	t.Helper()
	cmd := "agentctl " + strings.Join(args, " ")
	if r.Code == 0 {
		t.Errorf("%s on %s succeeded, want a refusal: %s", cmd, h.Node, r)
		return ""
	}
	line := strings.TrimSpace(r.Stderr)
	switch {
	case line == "":
		t.Errorf("%s on %s: exit %d with nothing on stderr (stdout %q)", cmd, h.Node, r.Code, r.Stdout)
	case strings.Contains(line, "\n"):
		t.Errorf("%s on %s: stderr has %d lines, want one: %q", cmd, h.Node, strings.Count(line, "\n")+1, r.Stderr)
	}
	for _, bad := range []string{"goroutine ", "panic:", "json:", "invalid character", "unexpected EOF", ".go:"} {
		if strings.Contains(r.Stderr, bad) {
			t.Errorf("%s on %s: stderr shows internals (%q): %q", cmd, h.Node, bad, r.Stderr)
		}
	}
	if r.Code < 0 {
		t.Errorf("%s on %s did not exit by itself: %s", cmd, h.Node, r)
	}
	return line
}

// decodeList decodes agentctl's JSON output: one array, or one object
// per line.
func decodeList[T any](out string) ([]T, error) {
	out = strings.TrimSpace(out)
	var list []T
	if strings.HasPrefix(out, "[") {
		err := json.Unmarshal([]byte(out), &list)
		return list, err
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v T
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, nil
}

// networkLS lists the networks h knows (network ls --format json).
func networkLS(t *testing.T, h *cluster.Host) []api.Network {
	t.Helper()
	out := ctl(t, h, "network", "ls", "--format", "json")
	nets, err := decodeList[api.Network](out)
	if err != nil {
		t.Fatalf("network ls --format json on %s: %v in %q", h.Node, err, out)
	}
	return nets
}

// inspectNetworks runs network inspect NAME… on h.
func inspectNetworks(t *testing.T, h *cluster.Host, names ...string) []api.Network {
	t.Helper()
	out := ctl(t, h, append([]string{"network", "inspect"}, names...)...)
	nets, err := decodeList[api.Network](out)
	if err != nil {
		t.Fatalf("network inspect on %s: %v in %q", h.Node, err, out)
	}
	if len(nets) != len(names) {
		t.Fatalf("network inspect %v on %s gave %d networks", names, h.Node, len(nets))
	}
	return nets
}

// inspectNetwork runs network inspect NAME on h.
func inspectNetwork(t *testing.T, h *cluster.Host, name string) api.Network {
	t.Helper()
	return inspectNetworks(t, h, name)[0]
}

// sandboxIP creates sandbox NAME on h attached to network net and returns
// its address there (from sandbox inspect).
func createSandbox(t *testing.T, h *cluster.Host, net, name string) netip.Addr {
	t.Helper()
	ctl(t, h, "sandbox", "create", "--net", net, name)
	return sandboxIP(t, h, name, net)
}

// sandboxIP is sandbox NAME's address on network net, as h tells it.
func sandboxIP(t *testing.T, h *cluster.Host, name, net string) netip.Addr {
	t.Helper()
	out := ctl(t, h, "sandbox", "inspect", name)
	sbs, err := decodeList[api.Sandbox](out)
	if err != nil || len(sbs) != 1 {
		t.Fatalf("sandbox inspect %s on %s: %v in %q", name, h.Node, err, out)
	}
	ep, ok := sbs[0].Networks[net]
	if !ok {
		t.Fatalf("sandbox %s on %s is not on network %s: %+v", name, h.Node, net, sbs[0].Networks)
	}
	ip, err := netip.ParseAddr(ep.IPAddress)
	if err != nil {
		t.Fatalf("sandbox %s on %s: address %q on %s: %v", name, h.Node, ep.IPAddress, net, err)
	}
	return ip
}

// waitListed waits until network ls on h shows the network, and returns
// how long that took.
func waitListed(t *testing.T, h *cluster.Host, name string) time.Duration {
	t.Helper()
	start := time.Now()
	err := eventually(context.Background(), func() error {
		for _, n := range networkLS(t, h) {
			if n.Name == name {
				return nil
			}
		}
		return fmt.Errorf("network %s not listed", name)
	})
	if err != nil {
		t.Fatalf("network ls on %s: %v after %s", h.Node, err, guard)
	}
	return time.Since(start)
}

// subnetOf is a network's first IPv4 subnet.
func subnetOf(t *testing.T, n api.Network) netip.Prefix {
	t.Helper()
	for _, c := range n.IPAM.Config {
		if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Addr().Is4() {
			return p
		}
	}
	t.Fatalf("network %s has no IPv4 subnet: %+v", n.Name, n.IPAM)
	return netip.Prefix{}
}

func describe(n api.Network) string {
	return fmt.Sprintf("%s id %s VNI %d IPAM %+v", n.Name, n.ID, n.VNI, n.IPAM.Config)
}
