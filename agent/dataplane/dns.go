package dataplane

// Names for the embedded DNS server (package resolver): a sandbox on a
// network whose driver offers service discovery (user-defined bridge and
// overlay networks; not the default bridge, as in Docker) asks
// 127.0.0.11, which answers for every endpoint of the sandbox's
// discoverable networks anywhere in the cluster (global networks: the
// gossip table; local ones: this host's records): sandbox name, hostname,
// aliases, NAME.NETWORK, and the sandbox's own --link aliases; other
// names go to the upstream servers.

import (
	"bufio"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/resolver"
	"github.com/meshnet/meshnet/sandbox"
)

// Resolver serves sandboxes at 127.0.0.11 (a *resolver.Server).
type Resolver interface {
	Attach(id, netns string) error
	Detach(id, netns string)
	Attached(id string) bool
}

// SetResolver gives the dataplane the DNS server to attach sandboxes to;
// Names is what it answers from.
func (d *Dataplane) SetResolver(r Resolver) { d.dns = r }

// Names is what the DNS server answers from.
func (d *Dataplane) Names() resolver.Names { return d.names }

// DNSQueries counts the questions to the DNS server by outcome: local,
// forwarded or failed.
func (d *Dataplane) DNSQueries(outcome string) int64 {
	switch outcome {
	case "local":
		return d.names.local.Load()
	case "forwarded":
		return d.names.forwarded.Load()
	}
	return d.names.failures.Load()
}

// Discoverable reports whether sandboxes of n find each other by name.
func (d *Dataplane) Discoverable(n *driver.Network) bool {
	drv, ok := d.nets.Driver(n)
	if !ok {
		return false
	}
	sd, ok := drv.(driver.ServiceDiscovery)
	return ok && sd.Discoverable(n)
}

// UsesEmbeddedDNS reports whether the sandbox asks 127.0.0.11: it has an
// endpoint on a discoverable network. A runtime that moves interfaces
// itself (Docker, Handoff) runs its own resolver there: its sandboxes do
// not.
func (d *Dataplane) UsesEmbeddedDNS(s *sandboxes.Sandbox) bool {
	if s.SharesNamespace() {
		return false
	}
	joined := d.recs.Joined(s.ID)
	if slices.ContainsFunc(joined, func(e *sandboxes.Endpoint) bool { return e.Handoff }) {
		return false
	}
	for _, e := range joined {
		if n := d.nets.Table.Get(e.NetworkID); n != nil && d.Discoverable(n) {
			return true
		}
	}
	return false
}

// ResolverSettings are the sandbox's nameservers, search domains and
// options, by Docker's rules. A sandbox that uses the embedded DNS asks 127.0.0.11
// (which forwards to --dns, the daemon's dns or the host's servers); one
// on the default bridge only gets --dns, else the daemon's dns, else the
// host's servers minus the loopback ones it could not reach. Search
// domains: --dns-search, else the daemon's, else the host's; options:
// --dns-opt, else the daemon's, else ndots:0 for the embedded DNS
// (Docker's) or the host's.
func (d *Dataplane) ResolverSettings(s *sandboxes.Sandbox) api.DNSConfig {
	hostServers, hostSearch, hostOpts := readResolvConf(hostResolvConf)
	dns, opts, search := s.DNS, s.DNSOpts, s.DNSSearch
	if len(search) == 0 {
		search = d.cfg.DNSSearch
	}
	if len(search) == 0 {
		search = hostSearch
	}
	if len(opts) == 0 {
		opts = d.cfg.DNSOpts
	}
	switch {
	case d.UsesEmbeddedDNS(s):
		dns = []string{resolver.Address.String()}
		if len(opts) == 0 {
			opts = []string{"ndots:0"}
		}
	default:
		if len(dns) == 0 {
			for _, a := range d.cfg.DNS {
				dns = append(dns, a.String())
			}
		}
		if len(dns) == 0 {
			for _, a := range hostServers {
				if ad, err := netip.ParseAddr(a); err == nil && !ad.IsLoopback() {
					dns = append(dns, a)
				}
			}
		}
		if len(opts) == 0 {
			opts = hostOpts
		}
	}
	return api.DNSConfig{Nameservers: dns, Search: search, Options: opts}
}

// SyncDNS serves a sandbox at 127.0.0.11 when it uses the embedded DNS,
// and stops when it no longer does (or is gone).
func (d *Dataplane) SyncDNS(sandboxID string) {
	if d.dns == nil {
		return
	}
	s := d.recs.Sandbox(sandboxID)
	use := s != nil && d.UsesEmbeddedDNS(s)
	if use {
		// Never into a namespace that is no longer the sandbox's (the
		// reaper cleans that sandbox up).
		if id, err := sandbox.Identify(s.NetNS); err != nil || (!s.NSID.IsZero() && id != s.NSID) {
			use = false
		}
	}
	switch {
	case use && !d.dns.Attached(s.ID):
		if err := d.dns.Attach(s.ID, s.NetNS); err != nil {
			d.log.Warn("serving DNS in a sandbox", "sandbox", s.Name, "err", err)
		}
	case !use && d.dns.Attached(sandboxID):
		path := ""
		if s != nil {
			path = s.NetNS
		}
		d.dns.Detach(sandboxID, path)
	}
}

// DetachDNS stops serving a sandbox; path ("" for none) is the namespace
// its redirect is taken out of.
func (d *Dataplane) DetachDNS(sandboxID, path string) {
	if d.dns != nil {
		d.dns.Detach(sandboxID, path)
	}
}

// names is the agent's view as the resolver reads it.
type names struct {
	d                          *Dataplane
	local, forwarded, failures atomic.Int64

	mu  sync.Mutex           // guards idx; a leaf
	idx map[string]*netIndex // global network id → its names
}

var _ resolver.Names = (*names)(nil)

// record is one name of an endpoint a sandbox may see.
type record struct {
	names []string
	addrs []netip.Addr
}

// netIndex is a global network's names and addresses, as gossip's
// endpoints give them at generation gen: a lookup reads two maps instead
// of walking every endpoint (a sandbox asking a thousand times a second
// costs the others little).
type netIndex struct {
	gen    uint64
	name   string // the network's, for NAME.NETWORK
	byName map[string][]netip.Addr
	byAddr map[netip.Addr][]string
}

// index returns the global network's index, built again when gossip's
// endpoints have changed since.
func (r *names) index(n *driver.Network) *netIndex {
	gen := r.d.remote.Generation(n.ID) // before reading: a change meanwhile makes the next call rebuild
	r.mu.Lock()
	x := r.idx[n.ID]
	r.mu.Unlock()
	if x != nil && x.gen == gen && x.name == n.Name {
		return x
	}
	x = &netIndex{gen: gen, name: n.Name, byName: map[string][]netip.Addr{}, byAddr: map[netip.Addr][]string{}}
	for _, ep := range r.d.remote.Endpoints(n.ID) {
		for _, rec := range namedRecords(n.Name, append([]string{ep.Name}, ep.Aliases...), ep.IP, ep.IPv6) {
			for _, nm := range rec.names {
				if _, ok := x.byName[nm]; !ok {
					x.byName[nm] = nil // known, if with no address
				}
				for _, ad := range rec.addrs {
					if !slices.Contains(x.byName[nm], ad) {
						x.byName[nm] = append(x.byName[nm], ad)
					}
				}
			}
			for _, ad := range rec.addrs {
				x.byAddr[ad] = append(x.byAddr[ad], rec.names...)
			}
		}
	}
	r.mu.Lock()
	if r.idx == nil {
		r.idx = map[string]*netIndex{}
	}
	r.idx[n.ID] = x
	r.mu.Unlock()
	return x
}

// namedRecords is one record: the names, lower case, bare and with the
// network's name appended, and the valid addresses.
func namedRecords(network string, names []string, addrs ...netip.Addr) []record {
	var all []string
	for _, nm := range names {
		if nm == "" {
			continue
		}
		nm = strings.ToLower(nm)
		all = append(all, nm, nm+"."+strings.ToLower(network))
	}
	return []record{{names: all, addrs: slices.DeleteFunc(addrs, func(x netip.Addr) bool { return !x.IsValid() })}}
}

// networks calls fn for every network of the sandbox whose names it may
// resolve, with the records not in the network's index: a local
// network's endpoints, and the sandbox's own link aliases.
func (r *names) networks(sandboxID string, fn func(n *driver.Network, records []record)) {
	d := r.d
	for _, mine := range d.recs.Joined(sandboxID) {
		n := d.nets.Table.Get(mine.NetworkID)
		if n == nil || !d.Discoverable(n) {
			continue
		}
		var out []record
		if !n.Global() {
			for _, e := range d.recs.OnNetwork(n.ID, -1) {
				if e.Joined() {
					out = append(out, namedRecords(n.Name, d.EndpointNames(e), e.Addr.Addr(), e.Addr6.Addr())...)
				}
			}
		}
		for _, l := range mine.Links { // this sandbox's own link aliases (IPv4: what icc off lets through)
			name, alias, _ := strings.Cut(l, ":")
			if t, err := d.recs.LinkTarget(name, n.ID); err == nil {
				out = append(out, namedRecords(n.Name, []string{alias}, t.Addr.Addr())...)
			}
		}
		fn(n, out)
	}
}

// EndpointNames are the names an endpoint answers to: its sandbox's name
// and hostname, and its aliases.
func (d *Dataplane) EndpointNames(e *sandboxes.Endpoint) []string {
	var names []string
	if s := d.recs.Sandbox(e.SandboxID); s != nil && !s.Handoff {
		names = append(names, s.Name.String(), s.Hostname)
	} else if e.Name != "" {
		names = append(names, e.Name)
	}
	names = append(names, e.Aliases...)
	slices.Sort(names)
	return slices.Compact(names)
}

func (r *names) LookupHost(sandboxID, name string, v6 bool) ([]netip.Addr, bool) {
	var out []netip.Addr
	known := false
	take := func(addrs []netip.Addr) {
		known = true
		for _, ad := range addrs {
			if ad.Is6() == v6 && !slices.Contains(out, ad) {
				out = append(out, ad)
			}
		}
	}
	r.networks(sandboxID, func(n *driver.Network, records []record) {
		if n.Global() {
			if addrs, ok := r.index(n).byName[name]; ok {
				take(addrs)
			}
		}
		for _, rec := range records {
			if slices.Contains(rec.names, name) {
				take(rec.addrs)
			}
		}
	})
	return out, known
}

func (r *names) LookupAddr(sandboxID string, addr netip.Addr) ([]string, bool) {
	var out []string
	r.networks(sandboxID, func(n *driver.Network, records []record) {
		if n.Global() {
			out = append(out, r.index(n).byAddr[addr]...)
		}
		for _, rec := range records {
			if slices.Contains(rec.addrs, addr) {
				out = append(out, rec.names...)
			}
		}
	})
	slices.Sort(out)
	out = slices.Compact(out)
	return out, len(out) > 0
}

// Upstreams: --dns, else the daemon's dns, else the host's resolv.conf
// (loopback servers too: the agent asks from the host's namespace); none
// for a sandbox only on internal networks.
func (r *names) Upstreams(sandboxID string) []netip.AddrPort {
	d := r.d
	s := d.recs.Sandbox(sandboxID)
	internalOnly := s != nil
	var servers []string
	if s != nil {
		for _, e := range d.recs.Joined(s.ID) {
			if n := d.nets.Table.Get(e.NetworkID); n != nil && !n.Internal {
				internalOnly = false
			}
		}
		servers = s.DNS
	}
	if internalOnly {
		return nil
	}
	if len(servers) == 0 {
		for _, ad := range d.cfg.DNS {
			servers = append(servers, ad.String())
		}
	}
	if len(servers) == 0 {
		servers, _, _ = readResolvConf(hostResolvConf)
	}
	var out []netip.AddrPort
	for _, sv := range servers {
		if ad, err := netip.ParseAddr(sv); err == nil && ad != d.cfg.DockerDNS {
			out = append(out, netip.AddrPortFrom(ad, 53))
		}
	}
	return out
}

// SandboxByAddr returns the sandbox of this host whose endpoint has the
// address a (a client of the DNS server on the host, Docker's resolver
// asking for one of its containers).
func (d *Dataplane) SandboxByAddr(a netip.Addr) (string, bool) {
	for _, e := range d.recs.Endpoints() {
		if e.Joined() && (e.Addr.Addr() == a || e.Addr6.Addr() == a) {
			return e.SandboxID, true
		}
	}
	return "", false
}

// Forwards: not a single-label name when the sandbox's resolver options
// set ndots (--dns-opt or the agent's dns-opt), as in Docker: the user
// asked for search domains to be tried, and the stub does so.
func (r *names) Forwards(sandboxID, name string) bool {
	if strings.Contains(name, ".") {
		return true
	}
	opts := r.d.cfg.DNSOpts
	if s := r.d.recs.Sandbox(sandboxID); s != nil && len(s.DNSOpts) > 0 {
		opts = s.DNSOpts
	}
	return !slices.ContainsFunc(opts, func(o string) bool { return strings.HasPrefix(o, "ndots:") })
}

func (r *names) Stats(outcome string) {
	switch outcome {
	case "local":
		r.local.Add(1)
	case "forwarded":
		r.forwarded.Add(1)
	default:
		r.failures.Add(1)
	}
}

// hostResolvConf is the host's resolver file.
var hostResolvConf = "/etc/resolv.conf"

// readResolvConf reads nameserver, search and options lines.
func readResolvConf(path string) (servers, search, opts []string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			servers = append(servers, fields[1])
		case "search", "domain":
			search = fields[1:]
		case "options":
			opts = append(opts, fields[1:]...)
		}
	}
	return servers, search, opts
}
