package e2e

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// udpEcho sends msg from ns to addr over UDP and returns the answer.
func udpEcho(ctx context.Context, ns *nshost.NS, to netip.AddrPort, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "udp", to.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	b := make([]byte, 1500)
	n, err := c.Read(b)
	return string(b[:n]), err
}

// Published ports (-p, -P with --expose) answer from outside, from the
// host itself on its address and on 127.0.0.1, and from sandboxes of the
// same and of other networks; on bridge and overlay networks; while the
// agent restarts; and no more once the sandbox is gone. A host port
// published already or bound by a process is refused and nothing is
// created.
func TestPublishedPorts(t *testing.T) {
	c := newCluster(t, cluster.StoreEmbedded, 2)
	ctx := testCtx(t)
	n1, n2 := c.Host(0), c.Host(1)
	out, err := c.AddOutside()
	if err != nil {
		t.Fatal(err)
	}
	ctl(t, n1, "network", "create", "b1")
	ctl(t, n1, "network", "create", "b2")
	ctl(t, n1, "network", "create", "-d", "overlay", "ov")
	waitListed(t, n2, "ov")
	web, peer, far, ovs := c.Name("web"), c.Name("peer"), c.Name("far"), c.Name("ovs")
	ctl(t, n1, "sandbox", "create", "--net", "b1", "-p", "8080:80", "-p", "8081:81/udp", "-p", "127.0.0.1:8082:80",
		"--expose", "90", "-P", web)
	createSandbox(t, n1, "b1", peer)
	createSandbox(t, n1, "b2", far)
	ctl(t, n2, "sandbox", "create", "--net", "ov", "-p", "9090:80", ovs)
	for _, s := range []string{web, ovs} {
		ns, err := nshost.OpenNS(s)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		serveWhoAmIOn(t, ns, 80)
		serveWhoAmIOn(t, ns, 90)
		echo, err := ns.ServeEcho("udp", ":81")
		if err != nil {
			t.Fatal(err)
		}
		defer echo.Close()
	}

	// sandbox port, like docker port.
	ports := ctl(t, n1, "sandbox", "port", web)
	var ephemeral string
	for _, line := range strings.Split(strings.TrimSpace(ports), "\n") {
		if p, ok := strings.CutPrefix(line, "90/tcp -> 0.0.0.0:"); ok {
			ephemeral = p
		}
	}
	for _, want := range []string{"80/tcp -> 0.0.0.0:8080", "80/tcp -> 127.0.0.1:8082", "81/udp -> 0.0.0.0:8081"} {
		if !strings.Contains(ports, want) {
			t.Errorf("sandbox port %s: %q lacks %q", web, ports, want)
		}
	}
	if ephemeral == "" || strings.TrimSpace(ctl(t, n1, "sandbox", "port", web, "90")) != "0.0.0.0:"+ephemeral {
		t.Fatalf("sandbox port %s: %q, no host port for 90/tcp", web, ports)
	}

	host1 := n1.Addr.Addr()
	at := func(a netip.Addr, port string) netip.AddrPort {
		return netip.MustParseAddrPort(net.JoinHostPort(a.String(), port))
	}
	peerNS, err := nshost.OpenNS(peer)
	if err != nil {
		t.Fatal(err)
	}
	defer peerNS.Close()
	farNS, err := nshost.OpenNS(far)
	if err != nil {
		t.Fatal(err)
	}
	defer farNS.Close()
	reach := func(what string, from *nshost.NS, to netip.AddrPort, wantSeen string) {
		t.Helper()
		seen, err := whoAmI(ctx, from, to)
		if err != nil {
			t.Errorf("%s (%s): %v", what, to, err)
		} else if wantSeen != "" && seen != wantSeen {
			t.Errorf("%s (%s): the sandbox saw %s, want %s", what, to, seen, wantSeen)
		}
	}
	checkAll := func(when string) {
		t.Helper()
		reach("outside → -p 8080:80 "+when, out.NS, at(host1, "8080"), out.Addr.Addr().String())
		reach("outside → -P 90 "+when, out.NS, at(host1, ephemeral), "")
		reach("n1 itself → its address "+when, n1.NS, at(host1, "8080"), "")
		reach("n1 itself → 127.0.0.1 "+when, n1.NS, at(netip.MustParseAddr("127.0.0.1"), "8080"), "")
		reach("n1 itself → 127.0.0.1:8082 "+when, n1.NS, at(netip.MustParseAddr("127.0.0.1"), "8082"), "")
		reach("a sandbox of the same network (hairpin) "+when, peerNS, at(host1, "8080"), "")
		reach("a sandbox of another network "+when, farNS, at(host1, "8080"), "")
		reach("outside → overlay sandbox on n2 "+when, out.NS, at(n2.Addr.Addr(), "9090"), out.Addr.Addr().String())
		if got, err := udpEcho(ctx, out.NS, at(host1, "8081"), "ping "+when); err != nil || got != "ping "+when {
			t.Errorf("outside → -p 8081:81/udp %s: %q, %v", when, got, err)
		}
	}
	checkAll("")
	if _, err := whoAmI(ctx, out.NS, at(host1, "8082")); err == nil {
		t.Error("a port published on 127.0.0.1 answers from outside")
	}

	// A taken host port is refused, nothing created.
	x := c.Name("x")
	for _, args := range [][]string{
		{"sandbox", "create", "--net", "b1", "-p", "8080:80", x},
		{"sandbox", "create", "--net", "b1", "-p", "127.0.0.1:8081:80/udp", x},
	} {
		line := refused(t, n1, n1.AgentCtl(args...), args...)
		if !strings.Contains(line, "already published") {
			t.Errorf("%v: %q, want \"already published\"", args, line)
		}
	}
	l, err := n1.NS.Listen("tcp", "0.0.0.0:8085")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"sandbox", "create", "--net", "b1", "-p", "8085:80", x}
	if line := refused(t, n1, n1.AgentCtl(args...), args...); !strings.Contains(line, "in use") {
		t.Errorf("a port bound by a process: %q, want \"in use\"", line)
	}
	l.Close()
	if _, err := os.Stat(filepath.Join("/run/netns", x)); err == nil || strings.Contains(ctl(t, n1, "sandbox", "ls"), x) {
		t.Errorf("a refused sandbox was created")
	}

	// The agent down and back: the ports keep answering.
	if err := n1.Stop(); err != nil {
		t.Fatal(err)
	}
	reach("outside → -p 8080:80 with the agent down", out.NS, at(host1, "8080"), "")
	if err := n1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.WaitStore(ctx); err != nil {
		t.Fatal(err)
	}
	checkAll("after a restart")

	ctl(t, n1, "sandbox", "rm", web)
	if _, err := whoAmI(ctx, out.NS, at(host1, "8080")); err == nil {
		t.Error("the port answers after its sandbox was removed")
	}
}
