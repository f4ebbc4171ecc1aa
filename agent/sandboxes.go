package agent

// Sandboxes and their endpoints. A sandbox is a named network namespace on
// this host; each endpoint is an interface (eth0, eth1, …) on one network
// with addresses leased from the store (global networks) or picked locally
// (bridge networks). Every operation completes or is undone step by step.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/sandbox"
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

// undo collects the steps that take back a half-done operation.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// CreateSandbox creates a sandbox and attaches it to its networks.
func (a *Agent) CreateSandbox(ctx context.Context, req api.SandboxCreate) (api.CreateResponse, error) {
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
	var rollback undo
	defer func() { rollback.run() }()

	if s.External {
		if err := sandbox.IsNetNS(s.NetNS); err != nil {
			return api.CreateResponse{}, badRequest("--netns %s: %v", s.NetNS, err)
		}
	} else {
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
	a.mu.Lock()
	a.sandboxes[s.ID] = s
	a.mu.Unlock()
	rollback.add(func() {
		a.mu.Lock()
		delete(a.sandboxes, s.ID)
		a.mu.Unlock()
	})
	for _, at := range attach {
		if err := a.attach(ctx, s, at, &rollback); err != nil {
			return api.CreateResponse{}, err
		}
	}
	if err := a.writeSandboxFiles(s); err != nil {
		return api.CreateResponse{}, err
	}
	if err := a.saveState(); err != nil {
		return api.CreateResponse{}, fmt.Errorf("saving the sandbox: %w", err)
	}
	rollback = nil
	a.log.Info("sandbox created", "name", s.Name, "id", s.ID, "endpoints", len(s.Endpoints))
	return api.CreateResponse{ID: s.ID}, nil
}

// attachment is one network a sandbox joins, resolved.
type attachment struct {
	net     *networkRecord
	ip, ip6 netip.Addr
	aliases []string
	links   []string
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
	if len(req.Publish) > 0 || req.PublishAll || len(req.Expose) > 0 {
		return nil, nil, badRequest("publishing ports (-p, -P, --expose) needs the bridge driver's NAT, which this meshagent does not have yet")
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
		def := "none"
		if a.defaultBridge() != nil {
			def = "bridge"
		}
		nets = []api.NetworkAttachment{{Network: def}}
	}
	var out []attachment
	for _, na := range nets {
		switch {
		case strings.HasPrefix(na.Network, "container:"):
			return nil, nil, badRequest("--net container:NAME is not supported yet: give the sandbox its own networks")
		case na.Network == "none" || na.Network == "host":
			if len(nets) > 1 {
				return nil, nil, badRequest("--net %s cannot be combined with other networks", na.Network)
			}
			if na.Network == "host" {
				return nil, nil, badRequest("--net host is not supported yet: a sandbox is its own namespace")
			}
			if na.IP != "" || na.IP6 != "" || len(na.Aliases) > 0 {
				return nil, nil, badRequest("--net none has no interface to give an address or alias")
			}
			continue
		}
		n, err := a.findNetwork(na.Network)
		if err != nil {
			return nil, nil, err
		}
		at, err := checkAttachment(n, na)
		if err != nil {
			return nil, nil, err
		}
		if slices.ContainsFunc(out, func(o attachment) bool { return o.net.ID == n.ID }) {
			return nil, nil, badRequest("network %s is given twice", n.Name)
		}
		out = append(out, at)
	}
	return s, out, nil
}

// checkAttachment validates one network of a sandbox.
func checkAttachment(n *networkRecord, na api.NetworkAttachment) (attachment, error) {
	at := attachment{net: n, aliases: na.Aliases, links: na.Links}
	switch {
	case n.ConfigOnly:
		return at, badRequest("network %s is a config-only network: sandboxes cannot join it", n.Name)
	case n.Driver == api.DriverNull || n.Driver == api.DriverHost:
		return at, badRequest("network %s cannot be combined with other networks", n.Name)
	}
	var err error
	if na.IP != "" {
		if at.ip, err = netip.ParseAddr(na.IP); err != nil || !at.ip.Is4() {
			return at, badRequest("invalid IPv4 address %q", na.IP)
		}
	}
	if na.IP6 != "" {
		if at.ip6, err = netip.ParseAddr(na.IP6); err != nil || !at.ip6.Is6() || at.ip6.Is4In6() {
			return at, badRequest("invalid IPv6 address %q", na.IP6)
		}
		if !n.IPv6 {
			return at, badRequest("network %s has no IPv6: --ip6 needs a network created with --ipv6", n.Name)
		}
	}
	for _, al := range na.Aliases {
		if al == "" || len(al) > 253 || strings.ContainsAny(al, " \t/") {
			return at, badRequest("invalid alias %q", al)
		}
	}
	for _, l := range na.Links {
		if name, alias, ok := strings.Cut(l, ":"); name == "" || (ok && alias == "") {
			return at, badRequest("invalid link %q: use SANDBOX or SANDBOX:ALIAS", l)
		}
	}
	return at, nil
}

// attach leases the endpoint's addresses, records it, publishes it and
// programs it, adding each undo step to rollback.
func (a *Agent) attach(ctx context.Context, s *sandboxRecord, at attachment, rollback *undo) error {
	n := at.net
	ep := &endpointRecord{ID: newID(), NetworkID: n.ID, Aliases: at.aliases, Links: at.links}
	a.mu.Lock()
	ep.IfName = s.nextIfName()
	a.mu.Unlock()
	if n.global() {
		_, alloc, err := a.usableStore()
		if err != nil {
			return err
		}
		owner := ipam.Owner{EndpointID: ep.ID, Node: a.cfg.NodeName}
		if ep.Addr, err = alloc.LeaseAddress(ctx, n.ID, n.Subnets, ipam.AddressRequest{Addr: at.ip, Owner: owner}); err != nil {
			a.noteStoreErr(err)
			return err
		}
		rollback.add(func() { a.releaseAddr(n.ID, ep.Addr.Addr(), ep.ID) })
		if n.IPv6 {
			if ep.Addr6, err = alloc.LeaseAddress(ctx, n.ID, n.Subnets, ipam.AddressRequest{Addr: at.ip6, IPv6: true, Owner: owner}); err != nil {
				a.noteStoreErr(err)
				return err
			}
			rollback.add(func() { a.releaseAddr(n.ID, ep.Addr6.Addr(), ep.ID) })
		}
	} else {
		a.mu.Lock()
		taken := a.localAddrs(n.ID)
		var err error
		ep.Addr, err = ipam.PickAddress(n.Subnets, taken, at.ip, true)
		if err == nil && n.IPv6 {
			ep.Addr6, err = ipam.PickAddress(n.Subnets, taken, at.ip6, false)
		}
		a.mu.Unlock()
		if err != nil {
			return err
		}
	}
	a.mu.Lock()
	s.Endpoints = append(s.Endpoints, ep)
	a.mu.Unlock()
	rollback.add(func() {
		a.mu.Lock()
		s.Endpoints = slices.DeleteFunc(s.Endpoints, func(e *endpointRecord) bool { return e.ID == ep.ID })
		a.mu.Unlock()
		a.applyNetworkNow(n.ID)
	})
	if n.global() {
		a.mu.Lock()
		gep := a.gossipEndpoint(s, ep)
		a.mu.Unlock()
		if err := a.gossip.Put(gep); err != nil {
			return fmt.Errorf("publishing the endpoint: %w", err)
		}
		rollback.add(func() { a.gossip.Delete(n.ID, ep.ID) })
	}
	if err := a.applyNetworkNow(n.ID); err != nil {
		return fmt.Errorf("attaching %s to network %s: %w", s.Name, n.Name, err)
	}
	return nil
}

// localAddrs are the addresses local endpoints hold in a network. The
// caller holds mu.
func (a *Agent) localAddrs(networkID string) map[netip.Addr]bool {
	taken := map[netip.Addr]bool{}
	for _, o := range a.sandboxes {
		if e := o.endpoint(networkID); e != nil {
			taken[e.Addr.Addr()] = true
			if e.Addr6.IsValid() {
				taken[e.Addr6.Addr()] = true
			}
		}
	}
	return taken
}

// releaseAddr gives an address lease back, best effort (a lease left
// behind by a failure here is found by the orphan sweep).
func (a *Agent) releaseAddr(networkID string, addr netip.Addr, endpointID string) {
	_, alloc, err := a.usableStore()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = alloc.ReleaseAddress(ctx, networkID, addr, endpointID)
	}
	if err != nil {
		a.log.Warn("releasing address lease; the orphan sweep will retry", "network", networkID, "addr", addr, "err", err)
	}
}

// writeSandboxFiles writes /etc/netns/NAME/{hostname,hosts,resolv.conf}.
func (a *Agent) writeSandboxFiles(s *sandboxRecord) error {
	if s.External {
		return nil
	}
	a.mu.Lock()
	f := sandbox.Files{Hostname: s.Hostname}
	names := []string{s.Hostname}
	if s.Name != s.Hostname {
		names = append(names, s.Name)
	}
	for _, e := range s.Endpoints {
		f.Hosts = append(f.Hosts, sandbox.HostEntry{IP: e.Addr.Addr(), Names: append(slices.Clone(names), e.Aliases...)})
		if e.Addr6.IsValid() {
			f.Hosts = append(f.Hosts, sandbox.HostEntry{IP: e.Addr6.Addr(), Names: slices.Clone(names)})
		}
	}
	f.ResolvConf = a.resolvConf(s)
	a.mu.Unlock()
	if err := sandbox.WriteFiles(s.Name, f); err != nil {
		return fmt.Errorf("writing the sandbox's /etc files: %w", err)
	}
	return nil
}

// resolvConf renders the sandbox's resolver settings, or nil to use the
// host's file. The caller holds mu.
func (a *Agent) resolvConf(s *sandboxRecord) []byte {
	dns, opts, search := s.DNS, s.DNSOpts, s.DNSSearch
	if len(dns) == 0 {
		for _, d := range a.cfg.DNS {
			dns = append(dns, d.String())
		}
	}
	if len(opts) == 0 {
		opts = a.cfg.DNSOpts
	}
	if len(search) == 0 {
		search = a.cfg.DNSSearch
	}
	if len(dns) == 0 && len(opts) == 0 && len(search) == 0 {
		return nil
	}
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

// RemoveSandbox detaches a sandbox from every network and deletes it.
// Without force it refuses while the store is down and the sandbox has
// leases there (they could not be given back); with force it goes on and
// leaves the leases to the orphan sweep.
func (a *Agent) RemoveSandbox(ctx context.Context, ref string, force bool) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	s, err := a.findSandbox(ref)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	global := false
	for _, e := range s.Endpoints {
		if n := a.networks[e.NetworkID]; n == nil || n.global() {
			global = true
		}
	}
	a.mu.Unlock()
	if global && !force {
		if _, _, err := a.usableStore(); err != nil {
			return err
		}
	}
	for _, e := range slices.Clone(s.Endpoints) {
		a.detach(s, e)
	}
	a.mu.Lock()
	delete(a.sandboxes, s.ID)
	a.mu.Unlock()
	var errs []error
	if !s.External {
		errs = append(errs, sandbox.Remove(s.Name))
	}
	errs = append(errs, a.saveState())
	a.log.Info("sandbox removed", "name", s.Name, "id", s.ID)
	return errors.Join(errs...)
}

// detach removes one endpoint: unpublish, unprogram, release.
func (a *Agent) detach(s *sandboxRecord, e *endpointRecord) {
	a.mu.Lock()
	n := a.networks[e.NetworkID]
	s.Endpoints = slices.DeleteFunc(s.Endpoints, func(x *endpointRecord) bool { return x.ID == e.ID })
	a.mu.Unlock()
	if n == nil || n.global() {
		a.gossip.Delete(e.NetworkID, e.ID)
	}
	if err := a.applyNetworkNow(e.NetworkID); err != nil {
		a.log.Warn("removing an endpoint from the datapath", "endpoint", e.ID, "err", err)
	}
	if n == nil || n.global() {
		a.releaseAddr(e.NetworkID, e.Addr.Addr(), e.ID)
		if e.Addr6.IsValid() {
			a.releaseAddr(e.NetworkID, e.Addr6.Addr(), e.ID)
		}
	}
}

// Connect attaches an existing sandbox to one more network.
func (a *Agent) Connect(ctx context.Context, netRef string, req api.NetworkConnect) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a.knowNetworks(ctx, netRef)
	a.mu.Lock()
	n, err := a.findNetwork(netRef)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	s, err := a.findSandbox(req.Container)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	if s.endpoint(n.ID) != nil {
		a.mu.Unlock()
		return conflict("sandbox %s is already connected to network %s", s.Name, n.Name)
	}
	a.mu.Unlock()
	na := api.NetworkAttachment{Network: netRef}
	if ec := req.EndpointConfig; ec != nil {
		na.Aliases, na.Links = ec.Aliases, ec.Links
		if ec.IPAMConfig != nil {
			na.IP, na.IP6 = ec.IPAMConfig.IPv4Address, ec.IPAMConfig.IPv6Address
		}
	}
	if n.Driver == api.DriverNull || n.Driver == api.DriverHost {
		return badRequest("a sandbox cannot be connected to the %s network after it is created", n.Name)
	}
	at, err := checkAttachment(n, na)
	if err != nil {
		return err
	}
	var rollback undo
	defer func() { rollback.run() }()
	if err := a.attach(ctx, s, at, &rollback); err != nil {
		return err
	}
	if err := a.writeSandboxFiles(s); err != nil {
		return err
	}
	if err := a.saveState(); err != nil {
		return err
	}
	rollback = nil
	return nil
}

// Disconnect detaches a sandbox from a network.
func (a *Agent) Disconnect(ctx context.Context, netRef string, req api.NetworkDisconnect) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	n, err := a.findNetwork(netRef)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	s, err := a.findSandbox(req.Container)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	e := s.endpoint(n.ID)
	a.mu.Unlock()
	if e == nil {
		if req.Force {
			return nil
		}
		return notFound("sandbox %s is not connected to network %s", s.Name, n.Name)
	}
	if n.global() && !req.Force {
		if _, _, err := a.usableStore(); err != nil {
			return err
		}
	}
	a.detach(s, e)
	return errors.Join(a.writeSandboxFiles(s), a.saveState())
}
