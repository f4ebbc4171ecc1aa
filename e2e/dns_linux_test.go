package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// serveUpstreamDNS runs a DNS server in ns on port 53 (UDP and TCP) that
// knows www.example.test and the single-label name solo; every other name
// is NXDOMAIN.
func serveUpstreamDNS(t *testing.T, ns *nshost.NS) {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		known := map[string]net.IP{"www.example.test.": net.IPv4(192, 0, 2, 77), "solo.": net.IPv4(192, 0, 2, 78)}
		if q := r.Question[0]; known[q.Name] != nil && q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: known[q.Name]})
		} else {
			m.SetRcode(r, dns.RcodeNameError)
		}
		w.WriteMsg(m)
	})
	pc, err := ns.ListenPacket("udp4", ":53")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ns.Listen("tcp4", ":53")
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
}

// lookup asks 127.0.0.11 from inside sandbox name; it returns the rcode
// and the answers' data, sorted.
func lookup(ctx context.Context, name, q string, qtype uint16) (int, []string, error) {
	ns, err := nshost.OpenNS(name)
	if err != nil {
		return 0, nil, err
	}
	defer ns.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "udp", "127.0.0.11:53")
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	co := &dns.Conn{Conn: c}
	if err := co.WriteMsg(new(dns.Msg).SetQuestion(dns.Fqdn(q), qtype)); err != nil {
		return 0, nil, err
	}
	m, err := co.ReadMsg()
	if err != nil {
		return 0, nil, err
	}
	var out []string
	for _, rr := range m.Answer {
		f := strings.Fields(rr.String())
		out = append(out, f[len(f)-1])
	}
	slices.Sort(out)
	return m.Rcode, out, nil
}

// Sandboxes on two hosts find each other by name, hostname, alias (all
// the endpoints behind a shared one) and NAME.NETWORK, in both
// directions of PTR; names of another network stay unknown; other names
// go to the upstream server; --dns-search works through the sandbox's
// resolver files; a removed sandbox stops resolving within seconds; the
// answers come back after an agent restart.
func TestEmbeddedDNS(t *testing.T) {
	c := cluster.NewT(t, cluster.Options{Hosts: 2, Tag: "e2e", AgentArgs: []string{"--dns", cluster.OutsideAddr.String()}})
	ctx := testCtx(t)
	n1, n2 := c.Host(0), c.Host(1)
	out, err := c.AddOutside()
	if err != nil {
		t.Fatal(err)
	}
	serveUpstreamDNS(t, out.NS)
	ctl(t, n1, "network", "create", "-d", "overlay", "multi")
	ctl(t, n1, "network", "create", "-d", "overlay", "other")
	waitListed(t, n2, "other")
	a, b, cc, x, d := c.Name("a"), c.Name("b"), c.Name("c"), c.Name("x"), c.Name("d")
	createSandbox(t, n1, "multi", a)
	ctl(t, n2, "sandbox", "create", "--net", "multi", "--hostname", "bee", "--network-alias", "svc", b)
	ipB := sandboxIP(t, n2, b, "multi")
	ctl(t, n2, "sandbox", "create", "--net", "multi", "--network-alias", "svc", cc)
	ipC := sandboxIP(t, n2, cc, "multi")
	createSandbox(t, n2, "other", x)
	ctl(t, n1, "sandbox", "create", "--net", "multi", "--dns-search", "example.test", d)
	nd := c.Name("nd")
	ctl(t, n1, "sandbox", "create", "--net", "multi", "--dns-opt", "ndots:2", nd)

	expect := func(from, q string, qtype uint16, rcode int, want ...string) {
		t.Helper()
		var got []string
		var gotRcode int
		err := eventually(ctx, func() error {
			var err error
			gotRcode, got, err = lookup(ctx, from, q, qtype)
			if err == nil && (gotRcode != rcode || !slices.Equal(got, want)) {
				err = fmt.Errorf("rcode %s, answers %v", dns.RcodeToString[gotRcode], got)
			}
			return err
		})
		if err != nil {
			t.Errorf("%s asks %s %s: %v; want %s %v", from, q, dns.TypeToString[qtype], err, dns.RcodeToString[rcode], want)
		}
	}
	both := []string{ipB.String(), ipC.String()}
	slices.Sort(both)
	expect(a, b, dns.TypeA, dns.RcodeSuccess, ipB.String())
	expect(a, "bee", dns.TypeA, dns.RcodeSuccess, ipB.String())
	expect(a, b+".multi", dns.TypeA, dns.RcodeSuccess, ipB.String())
	expect(a, "svc", dns.TypeA, dns.RcodeSuccess, both...)
	rev, _ := dns.ReverseAddr(ipB.String())
	if _, names, err := lookup(ctx, a, rev, dns.TypePTR); err != nil || !slices.Contains(names, b+".") {
		t.Errorf("PTR of %s from %s: %v, %v", ipB, a, names, err)
	}
	expect(a, x, dns.TypeA, dns.RcodeNameError)                              // another network: not a name here
	expect(a, "www.example.test", dns.TypeA, dns.RcodeSuccess, "192.0.2.77") // forwarded upstream
	expect(a, "solo", dns.TypeA, dns.RcodeSuccess, "192.0.2.78")             // single label, no ndots: forwarded
	expect(nd, "solo", dns.TypeA, dns.RcodeNameError)                        // ndots set: not forwarded
	if conf := readFile(t, "/etc/netns/"+nd+"/resolv.conf"); !strings.Contains(conf, "nameserver 127.0.0.11") || !strings.Contains(conf, "options ndots:2") {
		t.Errorf("resolv.conf of a sandbox with --dns-opt ndots:2:\n%s", conf)
	}

	// The resolver files in effect, through the C library.
	if got := ctl(t, n1, "sandbox", "exec", a, "--", "getent", "hosts", b); !strings.HasPrefix(got, ipB.String()) {
		t.Errorf("getent hosts %s in %s: %q", b, a, got)
	}
	if got := ctl(t, n1, "sandbox", "exec", d, "--", "getent", "hosts", "www"); !strings.HasPrefix(got, "192.0.2.77") {
		t.Errorf("getent hosts www in %s (--dns-search example.test): %q", d, got)
	}
	inspect := ctl(t, n1, "network", "inspect", "multi")
	if !strings.Contains(inspect, `"DNSNames"`) || !strings.Contains(inspect, `"bee"`) {
		t.Errorf("network inspect shows no DNS names:\n%s", inspect)
	}

	start := time.Now()
	ctl(t, n2, "sandbox", "rm", cc)
	expect(a, "svc", dns.TypeA, dns.RcodeSuccess, ipB.String())
	t.Logf("a removed endpoint stopped resolving within %s", time.Since(start).Round(time.Millisecond))

	if err := n1.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := n1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	expect(a, b, dns.TypeA, dns.RcodeSuccess, ipB.String())
}
