package agent

// Sandboxes: network namespaces of this host, named (ours: /run/netns/NAME
// with /etc/netns/NAME files) or adopted (--netns PATH). Creating one
// composes endpoint create and join per network; removing it, leave and
// delete.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/resolver"
	"github.com/meshnet/meshnet/sandbox"
)

// findSandbox looks a sandbox up by id, name or unique id prefix. The
// caller holds mu.
func (a *Agent) findSandbox(ref string) (*sandboxRecord, error) {
	if ref == "" {
		return nil, badRequest("no sandbox given")
	}
	if s, ok := a.sandboxes[ref]; ok {
		return s, nil
	}
	for _, s := range a.sandboxes {
		if s.Name == ref {
			return s, nil
		}
	}
	var match []*sandboxRecord
	for id, s := range a.sandboxes {
		if strings.HasPrefix(id, ref) {
			match = append(match, s)
		}
	}
	if len(match) == 1 {
		return match[0], nil
	}
	if len(match) > 1 {
		return nil, badRequest("sandbox id prefix %s is ambiguous", ref)
	}
	return nil, notFound("sandbox %s not found", ref)
}

// attachment is one network a new sandbox joins, checked.
type attachment struct {
	net  *driver.Network
	spec endpointSpec
}

// SandboxCreate creates a sandbox and joins it to its networks.
func (a *Agent) SandboxCreate(ctx context.Context, req api.SandboxCreate) (_ api.CreateResponse, err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()

	for _, na := range req.Networks {
		a.knowNetworks(ctx, na.Network)
	}
	s, attach, err := a.sandboxFromRequest(req)
	if err != nil {
		return api.CreateResponse{}, err
	}
	if err := a.pickPorts(s); err != nil {
		return api.CreateResponse{}, err
	}
	var rollback undo
	defer func() { rollback.run() }()

	var warning string
	switch {
	case s.External:
		// checked below, with its identity
	case s.HostNet || s.SharedFrom != "":
		target := hostNetNS
		if s.SharedFrom != "" {
			a.mu.Lock()
			target = a.sandboxes[s.SharedFrom].NetNS
			a.mu.Unlock()
		}
		path, err := sandbox.Attach(s.Name, target)
		if errors.Is(err, sandbox.ErrExists) {
			return api.CreateResponse{}, conflict("a network namespace named %s already exists on this host", s.Name)
		}
		if err != nil {
			return api.CreateResponse{}, fmt.Errorf("attaching the sandbox to %s: %w", target, err)
		}
		s.NetNS = path
		rollback.add(func() { sandbox.Remove(s.Name) })
		if s.discardedPorts {
			warning = "Published ports are discarded when using host network mode"
		}
	default:
		path, err := sandbox.Create(s.Name)
		if errors.Is(err, sandbox.ErrExists) {
			return api.CreateResponse{}, conflict("a network namespace named %s already exists on this host", s.Name)
		}
		if err != nil {
			return api.CreateResponse{}, fmt.Errorf("creating the sandbox's namespace: %w", err)
		}
		s.NetNS = path
		rollback.add(func() { sandbox.Remove(s.Name) })
	}
	if s.NSID, err = sandbox.Identify(s.NetNS); err != nil {
		if s.External {
			return api.CreateResponse{}, badRequest("--netns %s: %v", s.NetNS, err)
		}
		return api.CreateResponse{}, err
	}
	a.recordSandbox(s, &rollback)
	for _, at := range attach {
		e, err := a.createEndpoint(ctx, at.net, at.spec, &rollback)
		if err != nil {
			return api.CreateResponse{}, err
		}
		if err := a.joinEndpoint(s, e, "", &rollback); err != nil {
			return api.CreateResponse{}, err
		}
	}
	if err := a.writeSandboxFiles(s); err != nil {
		return api.CreateResponse{}, err
	}
	if err := a.saveRecords([]*sandboxRecord{s}, nil); err != nil {
		return api.CreateResponse{}, fmt.Errorf("saving the sandbox: %w", err)
	}
	rollback = nil
	a.syncDNS(s)
	a.log.Info("sandbox created", "name", s.Name, "id", s.ID, "endpoints", len(s.Endpoints))
	return api.CreateResponse{ID: s.ID, Warning: warning}, nil
}

func (a *Agent) sandboxFromRequest(req api.SandboxCreate) (*sandboxRecord, []attachment, error) {
	if err := sandbox.ValidName(req.Name); err != nil {
		return nil, nil, badRequest("%v", err)
	}
	s := &sandboxRecord{ID: newID(), Name: req.Name, Created: time.Now().UTC(), Hostname: req.Hostname,
		NetNS: req.NetNS, External: req.NetNS != "", DNSOpts: req.DNSOpts, DNSSearch: req.DNSSearch}
	if s.Hostname == "" {
		s.Hostname = req.Name
	}
	if err := sandbox.ValidName(s.Hostname); err != nil || len(s.Hostname) > 63 {
		return nil, nil, badRequest("invalid hostname %q: use letters, digits, '_', '-' and '.', at most 63 characters", s.Hostname)
	}
	for _, d := range req.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return nil, nil, badRequest("invalid --dns %q: it is not an IP address", d)
		}
		s.DNS = append(s.DNS, d)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, o := range a.sandboxes {
		if o.Name == s.Name {
			return nil, nil, conflict("sandbox %s already exists", s.Name)
		}
	}
	nets := req.Networks
	if len(nets) == 0 {
		def := a.defaultNetwork()
		if def == nil {
			return nil, nil, badRequest("no network given and this host has no default network")
		}
		nets = []api.NetworkAttachment{{Network: def.Name}}
	}
	var out []attachment
	for _, na := range nets {
		if other, ok := strings.CutPrefix(na.Network, "container:"); ok {
			if err := a.shareNamespace(s, other, req, len(nets)); err != nil {
				return nil, nil, err
			}
			return s, nil, nil
		}
		n, err := a.findNetwork(na.Network)
		if err != nil {
			return nil, nil, err
		}
		d, ok := a.driverOf(n)
		if !ok {
			return nil, nil, badRequest("network %s has driver %q, which this meshagent does not have", n.Name, n.Driver)
		}
		caps := d.Capabilities()
		if caps.Exclusive && len(nets) > 1 {
			return nil, nil, badRequest("network %s cannot be combined with other networks", n.Name)
		}
		if err := d.CheckJoin(n); err != nil {
			return nil, nil, err
		}
		if !caps.Interfaces {
			if na.IP != "" || na.IP6 != "" || len(na.Aliases) > 0 || len(na.Links) > 0 {
				return nil, nil, badRequest("network %s gives the sandbox no interface to give an address, alias or link", n.Name)
			}
			if caps.HostNamespace {
				if s.External {
					return nil, nil, badRequest("--netns and network %s both say which namespace the sandbox is: give one", n.Name)
				}
				s.HostNet = true
			}
			continue
		}
		if n.ConfigOnly {
			return nil, nil, badRequest("network %s is a config-only network: sandboxes cannot join it", n.Name)
		}
		spec, err := checkEndpointSpec(n, "", na.IP, na.IP6, na.Aliases, na.Links)
		if err != nil {
			return nil, nil, err
		}
		if slices.ContainsFunc(out, func(o attachment) bool { return o.net.ID == n.ID }) {
			return nil, nil, badRequest("network %s is given twice", n.Name)
		}
		out = append(out, attachment{net: n, spec: spec})
	}
	mappings, err := ports.Parse(req.Publish, req.Expose, req.PublishAll)
	if err == nil {
		s.Exposed, err = ports.ExposedPorts(req.Publish, req.Expose)
	}
	if err != nil {
		return nil, nil, badRequest("%s", strings.TrimPrefix(err.Error(), ports.ErrInvalid.Error()+": "))
	}
	if s.HostNet {
		s.discardedPorts = len(mappings) > 0 // with a warning, as Docker does
		return s, out, nil
	}
	for _, m := range mappings {
		if m.HostIP.Is6() {
			return nil, nil, badRequest("publishing on the IPv6 host address %s is not supported yet: publish on an IPv4 one or on all", m.HostIP)
		}
	}
	if len(mappings) > 0 {
		if err := a.checkPublish(out); err != nil {
			return nil, nil, err
		}
		s.Ports = mappings
	}
	return s, out, nil
}

// shareNamespace makes s share the namespace of the sandbox other (Docker's
// --net container:OTHER): no networks, addresses, ports or resolver
// settings of its own. The caller holds mu.
func (a *Agent) shareNamespace(s *sandboxRecord, other string, req api.SandboxCreate, nets int) error {
	switch {
	case nets > 1:
		return badRequest("--net container:%s cannot be combined with other networks", other)
	case s.External:
		return badRequest("--netns and --net container:%s both say which namespace the sandbox is: give one", other)
	case len(req.Publish) > 0 || req.PublishAll:
		return badRequest("conflicting options: publishing ports and --net container:%s (publish them on %s)", other, other)
	case req.Hostname != "" || len(req.DNS) > 0 || len(req.DNSOpts) > 0 || len(req.DNSSearch) > 0:
		return badRequest("conflicting options: --hostname and --dns* with --net container:%s (the sandbox takes %s's)", other, other)
	}
	na := req.Networks[0]
	if na.IP != "" || na.IP6 != "" || len(na.Aliases) > 0 || len(na.Links) > 0 {
		return badRequest("--net container:%s gives the sandbox no interface to give an address, alias or link", other)
	}
	o, err := a.findSandbox(other)
	if err != nil {
		return err
	}
	if o.HostNet {
		return badRequest("sandbox %s is the host's namespace: use --net host", o.Name)
	}
	o = a.namespaceOwner(o) // OTHER may share a namespace itself: share it with its owner
	s.SharedFrom, s.Hostname = o.ID, o.Hostname
	return nil
}

// namespaceOwner is the sandbox whose namespace s shares, or s itself.
// The caller holds mu.
func (a *Agent) namespaceOwner(s *sandboxRecord) *sandboxRecord {
	if o := a.sandboxes[s.SharedFrom]; o != nil {
		return o
	}
	return s
}

// namespaceOwnerName names whose namespace s uses. The caller holds mu.
func (a *Agent) namespaceOwnerName(s *sandboxRecord) string {
	if s.HostNet {
		return "the host"
	}
	return a.namespaceOwner(s).Name
}

// hostNetNS is the host's network namespace: the agent's own.
const hostNetNS = "/proc/self/ns/net"

// checkPublish refuses published ports unless the network that will carry
// the sandbox's default route (where they lead) has a driver that
// publishes them. The caller holds mu.
func (a *Agent) checkPublish(nets []attachment) error {
	if !a.cfg.IPTables {
		return badRequest("publishing ports needs the agent's packet filter, which iptables: false turns off")
	}
	for _, at := range nets {
		d, _ := a.driverOf(at.net)
		if ec, ok := d.(driver.ExternalConnectivity); !ok || !ec.DefaultRoute(at.net) {
			continue
		}
		if p, ok := d.(driver.PortPublisher); ok {
			return p.CheckPublish(at.net)
		}
		break
	}
	return badRequest("publishing ports (-p, -P) needs a network with a gateway to the outside whose driver publishes ports; none of the sandbox's networks is one")
}

// pickPorts gives the sandbox's mappings their host ports: checked when
// asked for, picked from the host's ephemeral range otherwise; a port
// published by another sandbox or bound by a process is refused. The
// caller holds opMu.
func (a *Agent) pickPorts(s *sandboxRecord) error {
	if len(s.Ports) == 0 {
		return nil
	}
	a.mu.Lock()
	var published []ports.Mapping
	for _, o := range a.sandboxes {
		published = append(published, o.Ports...)
	}
	a.mu.Unlock()
	// The agent's own ports, bound or not at this moment: VXLAN, gossip,
	// the embedded store.
	published = append(published, ports.Mapping{Proto: "udp", HostPort: uint16(a.cfg.VXLANPort)},
		ports.Mapping{Proto: "udp", HostPort: uint16(a.cfg.GossipPort)}, ports.Mapping{Proto: "tcp", HostPort: uint16(a.cfg.GossipPort)},
		ports.Mapping{Proto: "tcp", HostPort: EmbeddedClientPort}, ports.Mapping{Proto: "tcp", HostPort: EmbeddedPeerPort})
	lo, hi := ephemeralRange()
	if err := ports.Pick(s.Ports, published, portUsable, lo, hi); err != nil {
		return conflict("%s", strings.TrimPrefix(err.Error(), ports.ErrUnavailable.Error()+": "))
	}
	return nil
}

// portUsable tries to bind the host port, in the agent's (the host's)
// network namespace. Equivalent to: `ss -ltn 'sport = :PORT'` finding
// nothing.
func portUsable(m ports.Mapping) error {
	addr := "0.0.0.0"
	if m.HostIP.IsValid() {
		addr = m.HostIP.String()
	}
	hostPort := net.JoinHostPort(addr, strconv.Itoa(int(m.HostPort)))
	if m.Proto == "udp" {
		c, err := net.ListenPacket("udp4", hostPort)
		if err == nil {
			c.Close()
		}
		return err
	}
	l, err := net.Listen("tcp4", hostPort)
	if err == nil {
		l.Close()
	}
	return err
}

// ephemeralRange is the host's ephemeral port range, where -P picks from.
func ephemeralRange() (uint16, uint16) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); err == nil && len(f) == 2 {
		lo, err1 := strconv.ParseUint(f[0], 10, 16)
		hi, err2 := strconv.ParseUint(f[1], 10, 16)
		if err1 == nil && err2 == nil && lo > 0 && lo <= hi {
			return uint16(lo), uint16(hi)
		}
	}
	return 32768, 60999
}

// defaultNetwork is the network a sandbox created without one joins: the
// predefined network whose driver ranks highest. The caller holds mu.
func (a *Agent) defaultNetwork() *driver.Network {
	var best *driver.Network
	rank := 0
	for _, n := range a.networks {
		if !n.Predefined {
			continue
		}
		d, ok := a.driverOf(n)
		if ok && d.Capabilities().DefaultRank > rank {
			best, rank = n, d.Capabilities().DefaultRank
		}
	}
	return best
}

// writeSandboxFiles writes /etc/netns/NAME/{hostname,hosts,resolv.conf}.
func (a *Agent) writeSandboxFiles(s *sandboxRecord) error {
	if s.External || s.HostNet { // the host's own /etc serves a host sandbox
		return nil
	}
	a.mu.Lock()
	owner := a.namespaceOwner(s)
	f := sandbox.Files{Hostname: s.Hostname}
	names := []string{s.Hostname}
	if s.Name != s.Hostname {
		names = append(names, s.Name)
	}
	for _, e := range a.sandboxEndpoints(owner) {
		f.Hosts = append(f.Hosts, sandbox.HostEntry{IP: e.Addr.Addr(), Names: append(slices.Clone(names), e.Aliases...)})
		if e.Addr6.IsValid() {
			f.Hosts = append(f.Hosts, sandbox.HostEntry{IP: e.Addr6.Addr(), Names: slices.Clone(names)})
		}
	}
	for _, e := range a.sandboxEndpoints(owner) {
		for _, l := range e.Links { // ALIAS and NAME of a linked sandbox
			name, alias, _ := strings.Cut(l, ":")
			if t, err := a.linkTarget(name, e.NetworkID); err == nil {
				f.Hosts = append(f.Hosts, sandbox.HostEntry{IP: t.Addr.Addr(), Names: slices.Compact([]string{alias, name})})
			}
		}
	}
	f.ResolvConf = a.resolvConf(owner)
	a.mu.Unlock()
	if err := sandbox.WriteFiles(s.Name, f); err != nil {
		return fmt.Errorf("writing the sandbox's /etc files: %w", err)
	}
	a.mu.Lock()
	var sharers []*sandboxRecord
	for _, o := range a.sandboxes {
		if o.SharedFrom == s.ID {
			sharers = append(sharers, o)
		}
	}
	a.mu.Unlock()
	var errs []error
	for _, o := range sharers { // they show the owner's
		errs = append(errs, a.writeSandboxFiles(o))
	}
	return errors.Join(errs...)
}

// resolvConf renders the sandbox's resolv.conf (§20.2). A sandbox that
// uses the embedded DNS asks 127.0.0.11 (which forwards to --dns, the
// daemon's dns or the host's servers); one on the default bridge only
// gets --dns, else the daemon's dns, else the host's servers minus the
// loopback ones it could not reach. Search domains: --dns-search, else the
// daemon's, else the host's; options: --dns-opt, else the daemon's, else
// ndots:0 for the embedded DNS (Docker's) or the host's. The caller holds
// mu.
func (a *Agent) resolvConf(s *sandboxRecord) []byte {
	dns, search, opts := a.dnsSettings(s)
	var b strings.Builder
	b.WriteString("# written by meshagent\n")
	for _, d := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	return []byte(b.String())
}

// dnsSettings are the sandbox's nameservers, search domains and options,
// as resolvConf describes them. The caller holds mu.
func (a *Agent) dnsSettings(s *sandboxRecord) (dns, search, opts []string) {
	hostServers, hostSearch, hostOpts := readResolvConf(hostResolvConf)
	dns, opts, search = s.DNS, s.DNSOpts, s.DNSSearch
	embedded := a.usesEmbeddedDNS(s)
	if len(search) == 0 {
		search = a.cfg.DNSSearch
	}
	if len(search) == 0 {
		search = hostSearch
	}
	if len(opts) == 0 {
		opts = a.cfg.DNSOpts
	}
	switch {
	case embedded:
		dns = []string{resolver.Address.String()}
		if len(opts) == 0 {
			opts = []string{"ndots:0"}
		}
	default:
		if len(dns) == 0 {
			for _, d := range a.cfg.DNS {
				dns = append(dns, d.String())
			}
		}
		if len(dns) == 0 {
			for _, d := range hostServers {
				if ad, err := netip.ParseAddr(d); err == nil && !ad.IsLoopback() {
					dns = append(dns, d)
				}
			}
		}
		if len(opts) == 0 {
			opts = hostOpts
		}
	}
	return dns, search, opts
}

// SandboxRemove takes a sandbox off every network and deletes it.
// Without force it refuses while the store is down and the sandbox has
// leases there (they could not be given back); with force it goes on and
// leaves the leases to the orphan sweep.
func (a *Agent) SandboxRemove(ctx context.Context, ref string, force bool) (err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	s, err := a.findSandbox(ref)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	for _, o := range a.sandboxes {
		if o.SharedFrom == s.ID {
			a.mu.Unlock()
			return conflict("sandbox %s shares the network namespace of %s: remove %s first", o.Name, s.Name, o.Name)
		}
	}
	global := false
	for _, e := range a.sandboxEndpoints(s) {
		if n := a.networks[e.NetworkID]; n == nil || n.Global() {
			global = true
		}
	}
	a.mu.Unlock()
	if global && !force {
		ctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		if _, err := a.netStore(ctx); err != nil {
			return err
		}
	}
	if err := a.dropSandbox(s, !s.External); err != nil {
		return err
	}
	a.log.Info("sandbox removed", "name", s.Name, "id", s.ID)
	return nil
}

// dropSandbox leaves and deletes every endpoint of the sandbox and
// forgets it; with removeNS it also deletes the named namespace and its
// /etc files. The caller holds opMu.
func (a *Agent) dropSandbox(s *sandboxRecord, removeNS bool) error {
	if a.dns != nil {
		// A CNI runtime deletes the namespace after DEL: the redirect to
		// the resolver (an nftables commit, ~10 ms) is left to go with
		// it. In a namespace kept, it leads nowhere; an ADD writes it anew.
		path := s.NetNS
		if s.ContainerID != "" {
			path = ""
		}
		a.dns.Detach(s.ID, path)
	}
	a.mu.Lock()
	eps := a.sandboxEndpoints(s)
	a.mu.Unlock()
	for _, e := range eps {
		a.leaveEndpoint(e)
		a.deleteEndpoint(e)
	}
	a.mu.Lock()
	delete(a.sandboxes, s.ID)
	a.mu.Unlock()
	var errs []error
	if removeNS {
		errs = append(errs, sandbox.Remove(s.Name))
	}
	return errors.Join(append(errs, a.saveRecords([]*sandboxRecord{s}, eps))...)
}

// NetworkConnect joins an existing sandbox to one more network.
func (a *Agent) NetworkConnect(ctx context.Context, netRef string, req api.NetworkConnect) (err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a.knowNetworks(ctx, netRef)
	a.mu.Lock()
	n, err := a.findNetwork(netRef)
	var s *sandboxRecord
	if err == nil {
		s, err = a.findSandbox(req.Container)
	}
	if err == nil && a.endpointIn(s, n.ID) != nil {
		err = conflict("sandbox %s is already connected to network %s", s.Name, n.Name)
	}
	if err == nil && (s.HostNet || s.SharedFrom != "") {
		err = badRequest("sandbox %s uses the namespace of %s: connect that one instead", s.Name, a.namespaceOwnerName(s))
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	var aliases, links []string
	var ip, ip6 string
	if ec := req.EndpointConfig; ec != nil {
		aliases, links = ec.Aliases, ec.Links
		if ec.IPAMConfig != nil {
			ip, ip6 = ec.IPAMConfig.IPv4Address, ec.IPAMConfig.IPv6Address
		}
	}
	if d, ok := a.driverOf(n); ok && d.Capabilities().Exclusive {
		return badRequest("a sandbox cannot be connected to the %s network after it is created", n.Name)
	}
	spec, err := checkEndpointSpec(n, "", ip, ip6, aliases, links)
	if err != nil {
		return err
	}
	var rollback undo
	defer func() { rollback.run() }()
	e, err := a.createEndpoint(ctx, n, spec, &rollback)
	if err != nil {
		return err
	}
	if err := a.joinEndpoint(s, e, "", &rollback); err != nil {
		return err
	}
	if err := errors.Join(a.writeSandboxFiles(s), a.saveRecords([]*sandboxRecord{s}, []*endpointRecord{e})); err != nil {
		return err
	}
	rollback = nil
	a.syncDNS(s)
	return nil
}

// NetworkDisconnect takes a sandbox off a network.
func (a *Agent) NetworkDisconnect(ctx context.Context, netRef string, req api.NetworkDisconnect) (err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	n, err := a.findNetwork(netRef)
	var (
		s *sandboxRecord
		e *endpointRecord
	)
	if err == nil {
		s, err = a.findSandbox(req.Container)
	}
	if err == nil {
		e = a.endpointIn(s, n.ID)
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if e == nil {
		if req.Force {
			return nil
		}
		return notFound("sandbox %s is not connected to network %s", s.Name, n.Name)
	}
	if n.Global() && !req.Force {
		ctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		if _, err := a.netStore(ctx); err != nil {
			return err
		}
	}
	a.leaveEndpoint(e)
	a.deleteEndpoint(e)
	a.syncDNS(s)
	return errors.Join(a.writeSandboxFiles(s), a.saveRecords([]*sandboxRecord{s}, []*endpointRecord{e}))
}

// namespaceGone reports whether a sandbox's namespace is gone for good:
// its path leads nowhere or to something else than the namespace it was
// pinned to. A failure to tell (too many open files, say) is not "gone".
func namespaceGone(s *sandboxRecord) (bool, error) {
	id, err := sandbox.Identify(s.NetNS)
	switch {
	case err == nil:
		return !s.NSID.IsZero() && id != s.NSID, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ESRCH), errors.Is(err, sandbox.ErrNotNetNS):
		return true, err
	}
	return false, err
}

// reapGoneSandboxes forgets the sandboxes whose namespace is gone, or
// whose path now leads to another namespace (a process that exited and
// its PID reused, a named namespace deleted and made anew): their
// endpoints leave (peers are told) and give their leases back. The new
// namespace at such a path is never touched.
func (a *Agent) reapGoneSandboxes() {
	a.mu.Lock()
	var check []*sandboxRecord
	for _, s := range a.sandboxes {
		check = append(check, s)
	}
	a.mu.Unlock()
	var gone []*sandboxRecord
	for _, s := range check {
		if g, err := namespaceGone(s); g {
			gone = append(gone, s)
		} else if err != nil {
			a.log.Warn("cannot check a sandbox's namespace; trying again later", "sandbox", s.Name, "err", err)
		}
	}
	for _, s := range check { // a sharer goes with its owner
		if s.SharedFrom != "" && slices.ContainsFunc(gone, func(o *sandboxRecord) bool { return o.ID == s.SharedFrom }) {
			gone = append(gone, s)
		}
	}
	if len(gone) == 0 {
		return
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	reprogram := map[string]bool{}
	for _, s := range gone {
		a.mu.Lock()
		_, still := a.sandboxes[s.ID]
		a.mu.Unlock()
		g, err := namespaceGone(s)
		if !still || (!g && s.SharedFrom == "") {
			continue
		}
		a.log.Warn("the sandbox's namespace is gone; releasing its endpoints", "sandbox", s.Name, "netns", s.NetNS, "err", err)
		if !s.External && err != nil {
			sandbox.RemoveFiles(s.Name) // the namespace file is gone; our /etc files with it
		}
		if a.dns != nil {
			a.dns.Detach(s.ID, "") // the path may lead to another namespace now
		}
		a.mu.Lock()
		eps := a.sandboxEndpoints(s)
		delete(a.sandboxes, s.ID)
		a.mu.Unlock()
		for _, e := range eps {
			reprogram[a.unjoin(e)] = true
			a.deleteEndpoint(e)
		}
	}
	for id := range reprogram {
		a.recon.ApplyNow(id) // a failure is retried with back-off
	}
	a.saveState()
}

// pinSandboxes pins the sandboxes a data dir of an older agent kept
// without their namespace's identity. A named sandbox is ours and pinned
// as it is; an adopted one only if its namespace still holds our
// interface, since its path may lead elsewhere by now (a PID reused): if
// not, it is marked so that the reaper cleans it up.
func (a *Agent) pinSandboxes() {
	a.mu.Lock()
	type unpinned struct {
		s     *sandboxRecord
		probe *endpointRecord
	}
	var todo []unpinned
	for _, s := range a.sandboxes {
		if s.NSID.IsZero() {
			u := unpinned{s: s}
			if eps := a.sandboxEndpoints(s); len(eps) > 0 {
				u.probe = eps[0]
			}
			todo = append(todo, u)
		}
	}
	a.mu.Unlock()
	for _, u := range todo {
		id, err := sandbox.Identify(u.s.NetNS)
		if err != nil {
			continue // the reaper judges it
		}
		if u.s.External && u.probe != nil && !holdsInterface(u.s.NetNS, u.probe) {
			a.log.Warn("an adopted sandbox's namespace does not hold its interface any more", "sandbox", u.s.Name, "netns", u.s.NetNS)
			id = sandbox.NSID{Dev: ^uint64(0), Ino: ^uint64(0)} // no namespace has it: reaped
		}
		a.mu.Lock()
		u.s.NSID = id
		a.mu.Unlock()
	}
}

// holdsInterface reports whether the namespace at path has the endpoint's
// interface, with its name and the MAC derived from its address.
func holdsInterface(path string, e *endpointRecord) bool {
	ifaces, err := sandbox.Interfaces(path)
	if err != nil {
		return false
	}
	mac := e.mac().String()
	return slices.ContainsFunc(ifaces, func(i sandbox.Interface) bool { return i.Name == e.IfName && i.MAC.String() == mac })
}
