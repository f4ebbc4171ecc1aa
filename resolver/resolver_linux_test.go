package resolver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"github.com/meshnet/meshnet/firewall"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// table is the caller's view for the tests: names per sandbox.
type table struct {
	mu        sync.Mutex
	hosts     map[string][]netip.Addr // name → addresses
	upstreams []netip.AddrPort
	stats     map[string]int
}

func (t *table) LookupHost(_, name string, v6 bool) ([]netip.Addr, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	addrs, ok := t.hosts[name]
	var out []netip.Addr
	for _, a := range addrs {
		if a.Is6() == v6 {
			out = append(out, a)
		}
	}
	return out, ok
}

func (t *table) LookupAddr(_ string, addr netip.Addr) ([]string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var names []string
	for n, addrs := range t.hosts {
		if slices.Contains(addrs, addr) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, len(names) > 0
}

func (t *table) Upstreams(string) []netip.AddrPort { return t.upstreams }

func (t *table) Forwards(_, name string) bool { return name != "single" }

func (t *table) Stats(outcome string) {
	t.mu.Lock()
	t.stats[outcome]++
	t.mu.Unlock()
}

func redirect(ns netns.NsHandle, udp, tcp int) error {
	return firewall.RedirectDNS(ns, Address, udp, tcp)
}

// upstream serves example.test and big.test on loopback, as a real DNS
// server the resolver forwards to.
func upstream(t *testing.T) netip.AddrPort {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		switch r.Question[0].Name {
		case "example.test.":
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr("example.test.", dns.TypeA), A: net.IPv4(192, 0, 2, 77)})
		default:
			m.SetRcode(r, dns.RcodeNameError)
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// ask sends one question from inside ns to 127.0.0.11:53.
func ask(t *testing.T, ns *nshost.NS, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, network, "127.0.0.11:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	co := &dns.Conn{Conn: c}
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	if err := co.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	resp, err := co.ReadMsg()
	if err != nil {
		t.Fatalf("asking %s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return resp
}

func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		f := strings.Fields(rr.String())
		out = append(out, f[len(f)-1])
	}
	slices.Sort(out)
	return out
}

func TestResolver(t *testing.T) {
	ns, err := nshost.NewNS(nshost.Prefix("rsv") + "-sb")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	names := &table{stats: map[string]int{}, upstreams: []netip.AddrPort{upstream(t)}, hosts: map[string][]netip.Addr{
		"web":        {netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")},
		"web.multi":  {netip.MustParseAddr("10.0.0.2")},
		"db":         {netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.1.3")},
		"nothing-v6": {netip.MustParseAddr("10.0.0.9")},
	}}
	var big []netip.Addr
	for i := range 100 {
		big = append(big, netip.AddrFrom4([4]byte{10, 9, byte(i / 250), byte(1 + i%250)}))
	}
	names.hosts["big"] = big
	s := New(names, redirect, firewall.UnredirectDNS, slog.New(slog.DiscardHandler))
	defer s.Close()
	if err := s.Attach("sb", ns.Path()); err != nil {
		t.Fatal(err)
	}

	for _, network := range []string{"udp", "tcp"} {
		for _, c := range []struct {
			name  string
			qtype uint16
			rcode int
			want  []string
		}{
			{"web", dns.TypeA, dns.RcodeSuccess, []string{"10.0.0.2"}},
			{"WEB.", dns.TypeA, dns.RcodeSuccess, []string{"10.0.0.2"}},
			{"web", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00::2"}},
			{"web.multi", dns.TypeA, dns.RcodeSuccess, []string{"10.0.0.2"}},
			{"db", dns.TypeA, dns.RcodeSuccess, []string{"10.0.0.3", "10.0.1.3"}},
			{"nothing-v6", dns.TypeAAAA, dns.RcodeSuccess, nil},
			{"web", dns.TypeMX, dns.RcodeSuccess, nil},
			{"2.0.0.10.in-addr.arpa", dns.TypePTR, dns.RcodeSuccess, []string{"web.", "web.multi."}},
			{"example.test", dns.TypeA, dns.RcodeSuccess, []string{"192.0.2.77"}},
			{"nowhere.test", dns.TypeA, dns.RcodeNameError, nil},
			{"single", dns.TypeA, dns.RcodeNameError, nil},
		} {
			m := ask(t, ns, network, c.name, c.qtype)
			if m.Rcode != c.rcode || !slices.Equal(answers(m), c.want) {
				t.Errorf("%s %s over %s: rcode %s answers %v, want %s %v", c.name, dns.TypeToString[c.qtype], network,
					dns.RcodeToString[m.Rcode], answers(m), dns.RcodeToString[c.rcode], c.want)
			}
			if c.rcode == dns.RcodeSuccess && len(m.Answer) > 0 && m.Answer[0].Header().Ttl != TTL && c.name != "example.test" {
				t.Errorf("%s: TTL %d, want %d", c.name, m.Answer[0].Header().Ttl, TTL)
			}
		}
	}
	// A large answer is truncated over UDP and whole over TCP.
	if m := ask(t, ns, "udp", "big", dns.TypeA); !m.Truncated || len(m.Answer) >= 100 {
		t.Errorf("100 addresses over UDP: truncated %v, %d answers", m.Truncated, len(m.Answer))
	}
	if m := ask(t, ns, "tcp", "big", dns.TypeA); m.Truncated || len(m.Answer) != 100 {
		t.Errorf("100 addresses over TCP: truncated %v, %d answers", m.Truncated, len(m.Answer))
	}
	// Several answers come in changing orders (round robin).
	orders := map[string]bool{}
	for range 20 {
		m := ask(t, ns, "udp", "db", dns.TypeA)
		orders[fmt.Sprint(m.Answer)] = true
	}
	if len(orders) < 2 {
		t.Error("db's two addresses always come in the same order")
	}
	// The sandbox's own DNS server binds port 53 on every address.
	if err := ns.Do(func() error {
		pc, err := net.ListenPacket("udp4", "0.0.0.0:53")
		if err != nil {
			return err
		}
		defer pc.Close()
		ln, err := net.Listen("tcp4", "0.0.0.0:53")
		if err != nil {
			return err
		}
		return ln.Close()
	}); err != nil {
		t.Errorf("the sandbox cannot serve port 53 itself: %v", err)
	}
	// No upstreams: other names are refused.
	names.mu.Lock()
	names.upstreams = nil
	names.mu.Unlock()
	if m := ask(t, ns, "udp", "example.test", dns.TypeA); m.Rcode != dns.RcodeRefused {
		t.Errorf("with no upstreams: %s, want REFUSED", dns.RcodeToString[m.Rcode])
	}
	names.mu.Lock()
	if names.stats["local"] == 0 || names.stats["forwarded"] == 0 || names.stats["failed"] == 0 {
		t.Errorf("stats %v", names.stats)
	}
	names.mu.Unlock()

	s.Detach("sb", ns.Path())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if c, err := ns.Dial(ctx, "tcp", "127.0.0.11:53"); err == nil {
		c.Close()
		t.Error("the resolver still answers after Detach")
	}
}

// FuzzAnswer: no query, however malformed, makes the server panic or
// stay silent on a well-formed one.
func FuzzAnswer(f *testing.F) {
	for _, q := range []*dns.Msg{new(dns.Msg).SetQuestion("web.", dns.TypeA), new(dns.Msg).SetQuestion("1.0.0.10.in-addr.arpa.", dns.TypePTR)} {
		b, _ := q.Pack()
		f.Add(b)
	}
	names := &table{stats: map[string]int{}, hosts: map[string][]netip.Addr{"web": {netip.MustParseAddr("10.0.0.2")}}}
	s := New(names, nil, nil, slog.New(slog.DiscardHandler))
	a := &attached{inflight: make(chan struct{}, 1)}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m dns.Msg
		if m.Unpack(b) != nil {
			return
		}
		if resp := s.answer("sb", a, &m, false); resp == nil {
			t.Fatal("no answer")
		}
	})
}

// Finding 8 of issue 19: a flood from one sandbox stalled everyone's DNS.
// Each sandbox now has its own rate (QueryRate, QueryBurst) and TCP
// connections (MaxTCPConns): a burst far over it from sandbox a is mostly
// not answered, while sandbox b, asking meanwhile, gets every answer; a's
// TCP connections beyond the cap are closed at once.
func TestFloodBounded(t *testing.T) {
	prefix := nshost.Prefix("rsf")
	var nss []*nshost.NS
	for _, name := range []string{"a", "b"} {
		ns, err := nshost.NewNS(prefix + "-" + name)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		nss = append(nss, ns)
	}
	names := &table{stats: map[string]int{}, hosts: map[string][]netip.Addr{"web": {netip.MustParseAddr("10.0.0.2")}}}
	s := New(names, redirect, firewall.UnredirectDNS, slog.New(slog.DiscardHandler))
	defer s.Close()
	for i, ns := range nss {
		if err := s.Attach(fmt.Sprint(i), ns.Path()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := nss[0].Dial(ctx, "udp", "127.0.0.11:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const flood = 5 * QueryBurst
	// Answers are read as they come, so that none is lost to a's socket
	// buffer: the questions are paced a little for the same reason.
	got := make(chan int)
	go func() {
		n, buf := 0, make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			if _, err := c.Read(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	q, _ := new(dns.Msg).SetQuestion("web.", dns.TypeA).Pack()
	for i := range flood {
		if _, err := c.Write(q); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 50 { // b, meanwhile
		if m := ask(t, nss[1], "udp", "web", dns.TypeA); len(m.Answer) != 1 {
			t.Fatalf("b's question %d during a's flood: %v", i, m)
		}
	}
	answered := <-got
	if answered >= flood || answered < QueryBurst/2 {
		t.Errorf("a flood of %d questions got %d answers; want the burst's %d and what the rate adds, not all", flood, answered, QueryBurst)
	}
	t.Logf("a's flood of %d: %d answered; b's 50 questions meanwhile: all answered", flood, answered)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range MaxTCPConns + 4 {
		c, err := nss[0].Dial(ctx, "tcp", "127.0.0.11:53")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Every connection asks once: those past the cap get no answer.
	answeredTCP := 0
	deadline := time.Now().Add(time.Second)
	for _, c := range conns {
		c.SetDeadline(deadline)
		co := &dns.Conn{Conn: c}
		if co.WriteMsg(new(dns.Msg).SetQuestion("web.", dns.TypeA)) != nil {
			continue
		}
		if m, err := co.ReadMsg(); err == nil && len(m.Answer) == 1 {
			answeredTCP++
		}
	}
	if answeredTCP != MaxTCPConns {
		t.Errorf("%d TCP connections at once: %d answered, want the cap's %d", MaxTCPConns+4, answeredTCP, MaxTCPConns)
	}
}
