package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/meshnet/meshnet/internal/nsthread"
	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// Server serves every attached sandbox. Its methods are safe for
// concurrent use.
type Server struct {
	names    Names
	log      *slog.Logger
	redirect func(ns netns.NsHandle, udpPort, tcpPort int) error
	unredir  func(ns netns.NsHandle) error

	mu        sync.Mutex
	sandboxes map[string]*attached // guarded by mu; by sandbox id
	closed    bool                 // guarded by mu
	reactor   *reactor             // guarded by mu; made by the first Attach
}

// attached is one sandbox's sockets, read by the reactor.
type attached struct {
	udp, tcp *sock
	done     sync.WaitGroup // goroutines answering a query or serving a TCP connection
	inflight chan struct{}  // forwarding slots

	mu      sync.Mutex
	conns   map[net.Conn]bool // TCP connections being served; guarded by mu
	stopped bool              // guarded by mu: no more connections

	limit   *rate.Limiter            // the sandbox's questions
	clients map[string]*rate.Limiter // guarded by mu; per client of a shared socket (ServeAddress)
}

// maxClients bounds the per-client limiters of a shared socket.
const maxClients = 4096

func newAttached() *attached {
	return &attached{inflight: make(chan struct{}, MaxInFlight), conns: map[net.Conn]bool{},
		limit: rate.NewLimiter(QueryRate, QueryBurst), clients: map[string]*rate.Limiter{}}
}

// allow reports whether a question of client ("" on a sandbox's own
// sockets) is within its rate.
func (a *attached) allow(client string) bool {
	if client == "" {
		return a.limit.Allow()
	}
	a.mu.Lock()
	l := a.clients[client]
	if l == nil {
		if len(a.clients) >= maxClients {
			clear(a.clients)
		}
		l = rate.NewLimiter(QueryRate, QueryBurst)
		a.clients[client] = l
	}
	a.mu.Unlock()
	return l.Allow()
}

// track records a TCP connection being served, unless the sandbox is
// being detached or has MaxTCPConns already (per sandbox; on a shared
// socket, for all its clients).
func (a *attached) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped || len(a.conns) >= MaxTCPConns {
		return false
	}
	a.conns[c] = true
	return true
}

func (a *attached) untrack(c net.Conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.conns, c)
}

// New returns a server answering from names. redirect installs, in a
// sandbox's namespace, the DNAT of Address:53 to the sockets' ports;
// unredirect removes it (package firewall has both).
func New(names Names, redirect func(ns netns.NsHandle, udpPort, tcpPort int) error,
	unredirect func(ns netns.NsHandle) error, log *slog.Logger) *Server {
	return &Server{names: names, log: log, redirect: redirect, unredir: unredirect, sandboxes: map[string]*attached{}}
}

// Attach starts serving the sandboxes at the namespace path (idempotent
// for a sandbox already attached).
func (s *Server) Attach(sandbox, path string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("resolver closed")
	}
	if s.sandboxes[sandbox] != nil {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()

	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("opening sandbox %s: %w", path, err)
	}
	defer ns.Close()
	var udp, tcp, udpPort, tcpPort int
	err = nsthread.Run(ns, func() error {
		var err error
		udp, tcp, udpPort, tcpPort, err = openSockets()
		return err
	})
	if err != nil {
		return fmt.Errorf("opening the DNS sockets in %s: %w", path, err)
	}
	a := newAttached()
	a.udp = &sock{fd: udp, sandbox: sandbox, a: a}
	a.tcp = &sock{fd: tcp, tcp: true, sandbox: sandbox, a: a}
	if err := s.redirect(ns, udpPort, tcpPort); err != nil {
		unix.Close(udp)
		unix.Close(tcp)
		return fmt.Errorf("redirecting %s:53 in %s: %w", Address, path, err)
	}
	if err := s.serve(sandbox, a); err != nil && !errors.Is(err, errServed) { // errServed: closed or attached meanwhile
		return err
	}
	return nil
}

var errServed = errors.New("closed, or served already")

// serve starts reading a's sockets under key, or closes them and returns
// errServed if the server is closed or serves key already.
func (s *Server) serve(key string, a *attached) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.sandboxes[key] != nil {
		unix.Close(a.udp.fd)
		unix.Close(a.tcp.fd)
		return errServed
	}
	if s.reactor == nil {
		var err error
		if s.reactor, err = newReactor(s.log, s.answer); err != nil {
			unix.Close(a.udp.fd)
			unix.Close(a.tcp.fd)
			return err
		}
	}
	for _, sk := range []*sock{a.udp, a.tcp} {
		if err := s.reactor.add(sk); err != nil {
			s.stop(s.reactor, a)
			return err
		}
	}
	s.sandboxes[key] = a
	return nil
}

// ServeAddress answers at addr:53 in the caller's network namespace (the
// host's), where a runtime's own resolver forwards its containers'
// questions (Docker's, given addr as the daemon's dns): who tells the
// sandbox of each client by its address, whose names it then gets; a
// client who is refused (ok false) gets no answer, and one of no
// sandbox ("") only forwarding. It stops with Close.
func (s *Server) ServeAddress(addr netip.Addr, who func(client netip.Addr) (sandbox string, ok bool)) error {
	if !addr.Is4() {
		return fmt.Errorf("DNS address %s: IPv4 only", addr)
	}
	udp, tcp, _, _, err := openSocketsAt(addr, 53)
	if err != nil {
		return fmt.Errorf("serving DNS on %s:53: %w", addr, err)
	}
	a := newAttached()
	a.udp = &sock{fd: udp, a: a, who: who}
	a.tcp = &sock{fd: tcp, tcp: true, a: a, who: who}
	if err := s.serve("address "+addr.String(), a); err != nil {
		return fmt.Errorf("serving DNS on %s:53: %w", addr, err)
	}
	return nil
}

// Detach stops serving a sandbox; path, if given and its namespace still
// exists, loses the redirect (give none for a path that may lead to
// another namespace by now).
func (s *Server) Detach(sandbox, path string) {
	s.mu.Lock()
	a, r := s.sandboxes[sandbox], s.reactor
	delete(s.sandboxes, sandbox)
	s.mu.Unlock()
	if a == nil {
		return
	}
	s.stop(r, a)
	if path == "" {
		return
	}
	if ns, err := netns.GetFromPath(path); err == nil {
		s.unredir(ns)
		ns.Close()
	}
}

// Attached reports whether a sandbox is being served.
func (s *Server) Attached(sandbox string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sandboxes[sandbox] != nil
}

// Close stops serving every sandbox (their redirects stay: a restarted
// agent replaces them). It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	all, r := s.sandboxes, s.reactor
	s.sandboxes, s.closed, s.reactor = map[string]*attached{}, true, nil
	s.mu.Unlock()
	for _, a := range all {
		s.stop(r, a)
	}
	if r != nil {
		r.close()
	}
}

// stop ends a sandbox's service: its sockets close at once, so nothing
// new arrives; answers in flight get a second to finish (their replies
// are dropped), and its TCP connections are closed.
func (s *Server) stop(r *reactor, a *attached) {
	for _, sk := range []*sock{a.udp, a.tcp} {
		r.remove(sk)
	}
	a.mu.Lock()
	a.stopped = true
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	finished := make(chan struct{})
	go func() { a.done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Second):
	}
}

// answer makes the reply to r, or nil to send none.
func (s *Server) answer(sandbox string, a *attached, r *dns.Msg, tcp bool) *dns.Msg {
	if r.Response || len(r.Question) != 1 || r.Opcode != dns.OpcodeQuery {
		s.names.Stats("failed")
		return new(dns.Msg).SetRcode(r, dns.RcodeFormatError)
	}
	q := r.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	resp := new(dns.Msg).SetReply(r)
	resp.Authoritative, resp.RecursionAvailable = true, true
	if q.Qclass == dns.ClassINET {
		switch q.Qtype {
		case dns.TypeA, dns.TypeAAAA:
			if addrs, known := s.names.LookupHost(sandbox, name, q.Qtype == dns.TypeAAAA); known {
				rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
				for _, ad := range addrs {
					resp.Answer = append(resp.Answer, addrRR(q.Name, ad))
				}
				s.names.Stats("local")
				return resp
			}
		case dns.TypePTR:
			if addr, ok := ptrAddr(name); ok {
				if names, known := s.names.LookupAddr(sandbox, addr); known {
					for _, n := range names {
						resp.Answer = append(resp.Answer, &dns.PTR{Hdr: hdr(q.Name, dns.TypePTR), Ptr: dns.Fqdn(n)})
					}
					s.names.Stats("local")
					return resp
				}
			}
		}
		// A cluster name asked for another type: an empty answer.
		if _, known := s.names.LookupHost(sandbox, name, false); known {
			s.names.Stats("local")
			return resp
		}
	}
	return s.forward(sandbox, a, r, tcp)
}

// forward asks the upstream servers, one after the other.
func (s *Server) forward(sandbox string, a *attached, r *dns.Msg, tcp bool) *dns.Msg {
	if !s.names.Forwards(sandbox, strings.ToLower(strings.TrimSuffix(r.Question[0].Name, "."))) {
		s.names.Stats("local")
		return new(dns.Msg).SetRcode(r, dns.RcodeNameError)
	}
	ups := s.names.Upstreams(sandbox)
	if len(ups) == 0 {
		s.names.Stats("failed")
		return new(dns.Msg).SetRcode(r, dns.RcodeRefused)
	}
	select {
	case a.inflight <- struct{}{}:
		defer func() { <-a.inflight }()
	default:
		s.names.Stats("failed")
		return new(dns.Msg).SetRcode(r, dns.RcodeServerFailure)
	}
	for _, up := range ups[:min(len(ups), MaxUpstreams)] {
		network := "udp"
		if tcp {
			network = "tcp"
		}
		resp, err := exchange(r, network, up)
		if err == nil && resp.Truncated && network == "udp" {
			resp, err = exchange(r, "tcp", up)
		}
		if err != nil {
			s.log.Debug("upstream DNS server did not answer", "server", up, "err", err)
			continue
		}
		s.names.Stats("forwarded")
		resp.Id = r.Id
		return resp
	}
	s.names.Stats("failed")
	return new(dns.Msg).SetRcode(r, dns.RcodeServerFailure)
}

// exchange asks one upstream server, from the agent's (the host's)
// network namespace, as Docker does for loopback upstreams.
func exchange(r *dns.Msg, network string, up netip.AddrPort) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: UpstreamTimeout}
	ctx, cancel := context.WithTimeout(context.Background(), UpstreamTimeout)
	defer cancel()
	resp, _, err := c.ExchangeContext(ctx, r.Copy(), up.String())
	return resp, err
}

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
}

func addrRR(name string, a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: hdr(name, dns.TypeA), A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: a.AsSlice()}
}

// ptrAddr reads a reverse name (d.c.b.a.in-addr.arpa, or the nibbles of
// ip6.arpa) into the address it names.
func ptrAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		p := strings.Split(rest, ".")
		if len(p) != 4 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(p[3] + "." + p[2] + "." + p[1] + "." + p[0])
		return a, err == nil
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		n := strings.Split(rest, ".")
		if len(n) != 32 {
			return netip.Addr{}, false
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			b.WriteString(n[i])
			if i%4 == 0 && i > 0 {
				b.WriteByte(':')
			}
		}
		a, err := netip.ParseAddr(b.String())
		return a, err == nil
	}
	return netip.Addr{}, false
}
