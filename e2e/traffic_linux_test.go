package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/nshost"
)

// echoPort is where every peer's TCP and UDP echo servers listen.
const echoPort = 7007

// peer is a sandbox seen from inside: its namespace (opened by name) and
// TCP and UDP echo servers on echoPort.
type peer struct {
	name     string
	ip       netip.Addr
	ns       *nshost.NS
	tcp, udp *nshost.Echo
	once     sync.Once
}

// openPeer opens sandbox NAME's namespace and starts its echo servers.
// Close it before removing the sandbox: an open socket keeps a namespace,
// and its devices, alive.
func openPeer(t *testing.T, name string, ip netip.Addr) *peer {
	t.Helper()
	ns, err := nshost.OpenNS(name)
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{name: name, ip: ip, ns: ns}
	t.Cleanup(p.close)
	addr := "0.0.0.0:" + strconv.Itoa(echoPort)
	if p.tcp, err = ns.ServeEcho("tcp", addr); err != nil {
		t.Fatalf("TCP echo in %s: %v", name, err)
	}
	if p.udp, err = ns.ServeEcho("udp", addr); err != nil {
		t.Fatalf("UDP echo in %s: %v", name, err)
	}
	return p
}

func (p *peer) close() {
	p.once.Do(func() {
		if p.tcp != nil {
			p.tcp.Close()
		}
		if p.udp != nil {
			p.udp.Close()
		}
		p.ns.Close()
	})
}

func (p *peer) addr() string { return net.JoinHostPort(p.ip.String(), strconv.Itoa(echoPort)) }

// echo does one request/response over network ("tcp" or "udp") from
// namespace from to addr, waiting at most wait.
func echo(ctx context.Context, from *nshost.NS, network, addr string, wait time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c, err := from.Dial(ctx, network, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return nshost.RoundTrip(ctx, c, []byte("hello over "+network))
}

// reachable checks TCP, UDP and ICMP from one peer to another, once each.
func reachable(ctx context.Context, from, to *peer) error {
	for _, network := range []string{"tcp", "udp"} {
		if _, err := echo(ctx, from.ns, network, to.addr(), 2*time.Second); err != nil {
			return fmt.Errorf("%s %s → %s %s: %w", network, from.name, to.name, to.addr(), err)
		}
	}
	if _, err := from.ns.Ping(ctx, to.ip, 1, 0, 2*time.Second); err != nil {
		return fmt.Errorf("icmp %s → %s %s: %w", from.name, to.name, to.ip, err)
	}
	return nil
}

// mustReach checks that each peer reaches the other over TCP, UDP and
// ICMP, allowing the cluster time to converge first.
func mustReach(t *testing.T, a, b *peer) {
	t.Helper()
	ctx := testCtx(t)
	for _, pair := range [][2]*peer{{a, b}, {b, a}} {
		if err := eventually(ctx, func() error { return reachable(ctx, pair[0], pair[1]) }); err != nil {
			t.Errorf("not reachable within %s: %v", guard, err)
		}
	}
}

// mustNotReach checks that from cannot reach to over TCP, UDP or ICMP.
func mustNotReach(t *testing.T, from, to *peer) {
	t.Helper()
	ctx := testCtx(t)
	for _, network := range []string{"tcp", "udp"} {
		if _, err := echo(ctx, from.ns, network, to.addr(), time.Second); err == nil {
			t.Errorf("%s %s → %s %s works across networks", network, from.name, to.name, to.addr())
		}
	}
	if _, err := from.ns.Ping(ctx, to.ip, 2, 100*time.Millisecond, time.Second); err == nil {
		t.Errorf("icmp %s → %s %s works across networks", from.name, to.name, to.ip)
	}
}
