// Package resolver is meshnet's embedded DNS server: it answers at
// 127.0.0.11:53 inside every attached sandbox's network namespace, for the
// names the caller knows (Names: every endpoint of the sandbox's networks,
// cluster-wide) and by forwarding the rest to upstream servers.
//
// Sockets per sandbox, made inside its namespace: a UDP socket and a TCP
// listener on 127.0.0.11, each on a port the kernel picks, and a DNAT of
// 127.0.0.11:53 to them in the namespace's output hook (a table of its
// own, ip meshnet-dns, in the sandbox). This is Docker's way: the sandbox's
// own processes may still serve port 53 on any address, 0.0.0.0 included,
// since nothing of ours is bound to it. A socket keeps the namespace it
// was made in, so one goroutine per socket serves the sandbox from the
// agent's own namespace; no thread stays switched.
//
// Answers for cluster names carry a TTL of TTL seconds: short, so that a
// removed endpoint stops resolving within seconds even behind a caching
// stub resolver, and cheap, since the server answers from memory.
// Questions for other names go to the upstream servers the caller gives
// (none: REFUSED, as for an internal network), at most three, one after
// the other with a timeout each, over UDP then over TCP for a truncated
// answer; forwarding is bounded by MaxInFlight per sandbox, and a query
// over the limit is answered SERVFAIL at once rather than queued.
package resolver

import (
	"net/netip"
	"time"
)

// Address is where sandboxes ask: Docker's embedded DNS address.
var Address = netip.MustParseAddr("127.0.0.11")

// TTL of answers for cluster names, in seconds.
const TTL = 2

// Forwarding limits, like Docker's resolver.
const (
	MaxUpstreams    = 3
	MaxInFlight     = 100
	UpstreamTimeout = 2 * time.Second
)

// What one sandbox may ask of the server (and one client of ServeAddress):
// QueryRate questions a second on average, QueryBurst at once, over UDP
// and TCP together, on at most MaxTCPConns TCP connections at a time.
// Questions beyond are not answered (a stub resolver asks again), so that
// a flood from one sandbox does not slow the others'.
const (
	QueryRate   = 1000
	QueryBurst  = 200
	MaxTCPConns = 16
)

// Names answers for the cluster: the caller's view of the endpoints a
// sandbox may see. Its methods are called from many goroutines and must
// not block for long.
type Names interface {
	// LookupHost returns the addresses of name (lower case, no trailing
	// dot) for the sandbox: IPv4 ones or, with v6, IPv6 ones. known is
	// false when name is no cluster name for the sandbox (then it is
	// forwarded); a known name without addresses of the family answers
	// with no records.
	LookupHost(sandbox, name string, v6 bool) (addrs []netip.Addr, known bool)
	// LookupAddr returns the names of addr for the sandbox (PTR).
	LookupAddr(sandbox string, addr netip.Addr) (names []string, known bool)
	// Upstreams are the servers the sandbox's other questions go to, in
	// order; none means that nothing is forwarded (REFUSED).
	Upstreams(sandbox string) []netip.AddrPort
	// Forwards says whether a name that is no cluster name may be
	// forwarded; false answers NXDOMAIN (Docker does not forward
	// single-label names when the user set ndots).
	Forwards(sandbox, name string) bool
	// Stats is told of every question: "local", "forwarded", "failed".
	Stats(outcome string)
}
