package datapath_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// testbed is an underlay with hosts, a Datapath on each, and sandboxes. Its
// cleanup tears the overlay down through Apply(nil), checks that the hosts
// are back to what they were, and deletes every namespace.
type testbed struct {
	t         *testing.T
	ul        *nshost.Underlay
	hosts     []*nshost.Host
	dps       []*datapath.Datapath
	sandboxes map[string]*nshost.NS
}

var vteps = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24")}

func newTestbed(t *testing.T, tag string, nhosts int) *testbed {
	t.Helper()
	ul, err := nshost.NewUnderlay(nshost.Prefix(tag))
	if err != nil {
		t.Fatal(err)
	}
	tb := &testbed{t: t, ul: ul, sandboxes: map[string]*nshost.NS{}}
	t.Cleanup(tb.close)
	for i := range nhosts {
		h, err := ul.AddHost(fmt.Sprintf("h%d", i+1), vteps[i])
		if err != nil {
			t.Fatal(err)
		}
		dp, err := datapath.New(h.Handle())
		if err != nil {
			t.Fatal(err)
		}
		tb.hosts, tb.dps = append(tb.hosts, h), append(tb.dps, dp)
	}
	return tb
}

func (tb *testbed) close() {
	t := tb.t
	for i, dp := range tb.dps {
		if err := dp.Apply(nil); err != nil {
			t.Errorf("tearing down host %d: %v", i+1, err)
		}
		if got := render(t, tb.hosts[i].NS); got != "" {
			t.Errorf("host %d after teardown:\n%s", i+1, got)
		}
		if err := dp.Close(); err != nil {
			t.Error(err)
		}
	}
	for name, sb := range tb.sandboxes {
		if got := renderSandbox(t, sb); got != "" && !t.Failed() {
			t.Errorf("sandbox %s after teardown:\n%s", name, got)
		}
		if err := sb.Close(); err != nil {
			t.Error(err)
		}
	}
	if err := tb.ul.Close(); err != nil {
		t.Error(err)
	}
}

// sandbox creates (once) and returns the sandbox namespace called name.
func (tb *testbed) sandbox(name string) *nshost.NS {
	tb.t.Helper()
	if sb := tb.sandboxes[name]; sb != nil {
		return sb
	}
	sb, err := tb.ul.NewSandbox(name)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.sandboxes[name] = sb
	return sb
}

// serve runs TCP and UDP echo servers on addr in ns that prefix each reply
// with name, until the test ends.
func serve(t *testing.T, ns *nshost.NS, name, addr string) {
	t.Helper()
	ln, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ns.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 64)
				n, err := c.Read(buf)
				if err == nil {
					_, _ = c.Write(append([]byte(name+":"), buf[:n]...))
				}
			})
		}
	})
	wg.Go(func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	})
}

// tcpHello connects from ns to addr and returns the server's reply.
func tcpHello(ns *nshost.NS, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// udpHello sends a datagram from ns to addr and returns the reply, trying
// three times.
func udpHello(ns *nshost.NS, addr string) (string, error) {
	pc, err := ns.ListenPacket("udp", ":0")
	if err != nil {
		return "", err
	}
	defer pc.Close()
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return "", err
	}
	var errs []error
	for range 3 {
		if _, err := pc.WriteTo([]byte("hello"), to); err != nil {
			return "", err
		}
		_ = pc.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		buf := make([]byte, 64)
		n, _, err := pc.ReadFrom(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// mustReach checks that TCP and UDP from ns to addr get answered by want.
func mustReach(t *testing.T, ns *nshost.NS, addr, want string) {
	t.Helper()
	if got, err := tcpHello(ns, addr); err != nil || got != want+":hello" {
		t.Errorf("tcp %s → %s: got %q, %v; want %q", ns.Name, addr, got, err, want+":hello")
	}
	if got, err := udpHello(ns, addr); err != nil || got != want+":hello" {
		t.Errorf("udp %s → %s: got %q, %v; want %q", ns.Name, addr, got, err, want+":hello")
	}
}

// mustNotReach checks that neither TCP nor UDP from ns to addr is answered.
func mustNotReach(t *testing.T, ns *nshost.NS, addr string) {
	t.Helper()
	if got, err := tcpHello(ns, addr); err == nil {
		t.Errorf("tcp %s → %s: answered %q, want no answer", ns.Name, addr, got)
	}
	if got, err := udpHello(ns, addr); err == nil {
		t.Errorf("udp %s → %s: answered %q, want no answer", ns.Name, addr, got)
	}
}

func mustApply(t *testing.T, dp *datapath.Datapath, nets ...datapath.Network) {
	t.Helper()
	if err := dp.Apply(nets); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }
