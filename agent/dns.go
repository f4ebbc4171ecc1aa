package agent

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
	"sync/atomic"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/resolver"
	"github.com/meshnet/meshnet/sandbox"
)

// dnsNames is the agent seen by the resolver.
type dnsNames struct {
	a                          *Agent
	local, forwarded, failures atomic.Int64
}

var _ resolver.Names = (*dnsNames)(nil)

// record is one name of an endpoint a sandbox may see.
type record struct {
	names []string
	addrs []netip.Addr
}

// discoverable reports whether sandboxes of n find each other by name.
// The caller holds mu.
func (a *Agent) discoverable(n *driver.Network) bool {
	d, ok := a.driverOf(n)
	if !ok {
		return false
	}
	sd, ok := d.(driver.ServiceDiscovery)
	return ok && sd.Discoverable(n)
}

// recordsFor lists what the sandbox may resolve. The caller holds mu.
func (a *Agent) recordsFor(sandboxID string) []record {
	s := a.sandboxes[sandboxID]
	if s == nil {
		return nil
	}
	var out []record
	for _, mine := range a.sandboxEndpoints(s) {
		n := a.networks[mine.NetworkID]
		if n == nil || !a.discoverable(n) {
			continue
		}
		add := func(names []string, addrs ...netip.Addr) {
			var all []string
			for _, nm := range names {
				if nm == "" {
					continue
				}
				nm = strings.ToLower(nm)
				all = append(all, nm, nm+"."+strings.ToLower(n.Name))
			}
			out = append(out, record{names: all, addrs: slices.DeleteFunc(addrs, func(x netip.Addr) bool { return !x.IsValid() })})
		}
		if n.Global() && a.gossip != nil {
			for _, ep := range a.gossip.Endpoints(n.ID) {
				add(append([]string{ep.Name}, ep.Aliases...), ep.IP, ep.IPv6)
			}
		} else {
			for _, e := range a.endpoints {
				if e.NetworkID == n.ID && e.joined() {
					add(a.endpointNames(e), e.Addr.Addr(), e.Addr6.Addr())
				}
			}
		}
		for _, l := range mine.Links { // this sandbox's own link aliases (IPv4: what icc off lets through)
			name, alias, _ := strings.Cut(l, ":")
			if t, err := a.linkTarget(name, n.ID); err == nil {
				add([]string{alias}, t.Addr.Addr())
			}
		}
	}
	return out
}

// endpointNames are the names an endpoint answers to: its sandbox's name
// and hostname, and its aliases. The caller holds mu.
func (a *Agent) endpointNames(e *endpointRecord) []string {
	var names []string
	if s := a.sandboxes[e.SandboxID]; s != nil {
		names = append(names, s.Name, s.Hostname)
	} else if e.Name != "" {
		names = append(names, e.Name)
	}
	names = append(names, e.Aliases...)
	slices.Sort(names)
	return slices.Compact(names)
}

func (d *dnsNames) LookupHost(sandbox, name string, v6 bool) ([]netip.Addr, bool) {
	a := d.a
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []netip.Addr
	known := false
	for _, r := range a.recordsFor(sandbox) {
		if !slices.Contains(r.names, name) {
			continue
		}
		known = true
		for _, ad := range r.addrs {
			if ad.Is6() == v6 && !slices.Contains(out, ad) {
				out = append(out, ad)
			}
		}
	}
	return out, known
}

func (d *dnsNames) LookupAddr(sandbox string, addr netip.Addr) ([]string, bool) {
	a := d.a
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.recordsFor(sandbox) {
		if slices.Contains(r.addrs, addr) {
			out = append(out, r.names...)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return out, len(out) > 0
}

// Upstreams: --dns, else the daemon's dns, else the host's resolv.conf
// (loopback servers too: the agent asks from the host's namespace); none
// for a sandbox only on internal networks.
func (d *dnsNames) Upstreams(sandbox string) []netip.AddrPort {
	a := d.a
	a.mu.Lock()
	s := a.sandboxes[sandbox]
	internalOnly := s != nil
	var servers []string
	if s != nil {
		for _, e := range a.sandboxEndpoints(s) {
			if n := a.networks[e.NetworkID]; n != nil && !n.Internal {
				internalOnly = false
			}
		}
		servers = s.DNS
	}
	a.mu.Unlock()
	if internalOnly {
		return nil
	}
	if len(servers) == 0 {
		for _, ad := range a.cfg.DNS {
			servers = append(servers, ad.String())
		}
	}
	if len(servers) == 0 {
		servers = hostNameservers()
	}
	var out []netip.AddrPort
	for _, sv := range servers {
		if ad, err := netip.ParseAddr(sv); err == nil {
			out = append(out, netip.AddrPortFrom(ad, 53))
		}
	}
	return out
}

// Forwards: not a single-label name when the sandbox's resolver options
// set ndots (--dns-opt or the agent's dns-opt), as in Docker: the user
// asked for search domains to be tried, and the stub does so.
func (d *dnsNames) Forwards(sandbox, name string) bool {
	if strings.Contains(name, ".") {
		return true
	}
	a := d.a
	a.mu.Lock()
	defer a.mu.Unlock()
	opts := a.cfg.DNSOpts
	if s := a.sandboxes[sandbox]; s != nil && len(s.DNSOpts) > 0 {
		opts = s.DNSOpts
	}
	return !slices.ContainsFunc(opts, func(o string) bool { return strings.HasPrefix(o, "ndots:") })
}

func (d *dnsNames) Stats(outcome string) {
	switch outcome {
	case "local":
		d.local.Add(1)
	case "forwarded":
		d.forwarded.Add(1)
	default:
		d.failures.Add(1)
	}
}

// hostResolvConf is the host's resolver file.
var hostResolvConf = "/etc/resolv.conf"

// hostNameservers are the nameservers of the host's resolv.conf.
func hostNameservers() []string {
	servers, _, _ := readResolvConf(hostResolvConf)
	return servers
}

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

// usesEmbeddedDNS reports whether the sandbox asks 127.0.0.11: it has an
// endpoint on a discoverable network. The caller holds mu.
func (a *Agent) usesEmbeddedDNS(s *sandboxRecord) bool {
	if s.HostNet || s.SharedFrom != "" {
		return false
	}
	for _, e := range a.sandboxEndpoints(s) {
		if n := a.networks[e.NetworkID]; n != nil && a.discoverable(n) {
			return true
		}
	}
	return false
}

// syncDNS serves a sandbox at 127.0.0.11 when it uses the embedded DNS,
// and stops when it no longer does.
func (a *Agent) syncDNS(s *sandboxRecord) {
	if a.dns == nil {
		return
	}
	a.mu.Lock()
	use, path, pinned := a.usesEmbeddedDNS(s), s.NetNS, s.NSID
	_, exists := a.sandboxes[s.ID]
	a.mu.Unlock()
	if use {
		// Never into a namespace that is no longer the sandbox's (the
		// reaper cleans that sandbox up).
		if id, err := sandbox.Identify(path); err != nil || (!pinned.IsZero() && id != pinned) {
			use = false
		}
	}
	switch {
	case use && exists && !a.dns.Attached(s.ID):
		if err := a.dns.Attach(s.ID, path); err != nil {
			a.log.Warn("serving DNS in a sandbox", "sandbox", s.Name, "err", err)
		}
	case (!use || !exists) && a.dns.Attached(s.ID):
		a.dns.Detach(s.ID, path)
	}
}
