package agent

// Network operations. A network's kind is its driver's business
// (agent/driver): the core reads capabilities — global networks live in
// the cluster store (agent/netstore, created with their leases in one
// transaction), local ones in the data dir.

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/agent/service"
)

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// opTimeout bounds one API operation's store work.
const opTimeout = 30 * time.Second

// findNetwork looks a network up by full id, name, or unique id prefix.
// The caller holds mu.
func (a *Agent) findNetwork(ref string) (*driver.Network, error) {
	if ref == "" {
		return nil, badRequest("no network given")
	}
	if n, ok := a.networks[ref]; ok {
		return n, nil
	}
	for _, n := range a.networks {
		if n.Name == ref {
			return n, nil
		}
	}
	var match []*driver.Network
	for id, n := range a.networks {
		if strings.HasPrefix(id, ref) {
			match = append(match, n)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, notFound("network %s not found", ref)
	}
	return nil, badRequest("network id prefix %s is ambiguous: %d networks match", ref, len(match))
}

func (a *Agent) lookupNetwork(ref string) (*driver.Network, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.findNetwork(ref)
}

// driverOf returns a known network's driver. A network whose driver this
// agent lacks (a record written by a newer agent) has none.
func (a *Agent) driverOf(n *driver.Network) (driver.Driver, bool) {
	return a.drivers.Lookup(n.Driver)
}

// NetworkCreate validates req and creates the network.
func (a *Agent) NetworkCreate(ctx context.Context, req api.NetworkCreate) (_ api.CreateResponse, err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if req.ConfigFrom != nil && req.ConfigFrom.Network != "" {
		a.knowNetworks(ctx, req.ConfigFrom.Network)
	}
	n, d, err := a.networkFromRequest(req)
	if err != nil {
		return api.CreateResponse{}, err
	}
	if d.Capabilities().Scope == driver.ScopeGlobal && !n.ConfigOnly {
		ns, err := a.netStore(ctx)
		if err != nil {
			return api.CreateResponse{}, err
		}
		if err := ns.Create(ctx, n, d.Capabilities().VNI); err != nil {
			a.noteStoreErr(err)
			return api.CreateResponse{}, err
		}
	} else if err := a.leaseLocalSubnets(n, d); err != nil {
		return api.CreateResponse{}, err
	}
	a.log.Info("network created", "name", n.Name, "id", n.ID, "driver", n.Driver, "vni", n.VNI, "subnets", subnetList(n.Subnets))
	// The store's watch may have brought the record already; then it has
	// done what follows.
	a.mu.Lock()
	_, known := a.networks[n.ID]
	if !known {
		a.networks[n.ID] = n
	}
	a.mu.Unlock()
	if !known {
		a.networksChanged(n.ID)
	}
	return api.CreateResponse{ID: n.ID}, nil
}

// networkFromRequest checks every field of req and returns the network to
// create (leases not yet taken) with its driver.
func (a *Agent) networkFromRequest(req api.NetworkCreate) (*driver.Network, driver.Driver, error) {
	n := &driver.Network{ID: newID(), Name: req.Name, Driver: req.Driver, Created: time.Now().UTC(),
		IPv6: req.EnableIPv6, Internal: req.Internal, Attachable: req.Attachable, ConfigOnly: req.ConfigOnly,
		Options: maps.Clone(req.Options), Labels: maps.Clone(req.Labels)}
	switch {
	case req.Name == "":
		return nil, nil, badRequest("a network needs a name")
	case len(req.Name) > 64 || !validName.MatchString(req.Name):
		return nil, nil, badRequest("invalid network name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64 characters", req.Name)
	case req.Ingress:
		return nil, nil, badRequest("ingress networks are a Swarm routing-mesh feature that meshnet does not have")
	case req.ConfigOnly && req.ConfigFrom != nil && req.ConfigFrom.Network != "":
		return nil, nil, badRequest("a config-only network cannot take its configuration from another network")
	}
	d, err := a.drivers.Get(req.Driver)
	if err != nil {
		return nil, nil, err
	}
	n.Driver = d.Name()
	caps := d.Capabilities()
	if req.ConfigOnly {
		// Docker records config-only networks under the null driver;
		// their options are checked by the driver of the network that
		// takes its configuration from them.
		if d, err = a.drivers.Get(a.drivers.ConfigOnly()); err != nil {
			return nil, nil, err
		}
		n.Driver, caps = d.Name(), driver.Capabilities{Scope: driver.ScopeLocal}
		if err := driver.CheckOptions(n.Driver, n.Options, a.drivers.AllOptions()); err != nil {
			return nil, nil, err
		}
	}
	switch {
	case req.Scope == "" || req.Scope == caps.Scope:
	case req.Scope == driver.ScopeLocal || req.Scope == driver.ScopeGlobal:
		return nil, nil, badRequest("the %s driver makes %s networks; --scope %s is not supported", n.Driver, caps.Scope, req.Scope)
	default:
		return nil, nil, badRequest("invalid scope %q: use local or global", req.Scope)
	}
	n.Scope = caps.Scope
	a.mu.Lock()
	for _, o := range a.networks {
		if o.Name == n.Name {
			a.mu.Unlock()
			return nil, nil, conflict("network with name %s already exists", n.Name)
		}
	}
	a.mu.Unlock()
	if caps.Singleton && !req.ConfigOnly {
		return nil, nil, badRequest("only one instance of the %q network is allowed: use the predefined one", a.predefinedName(n.Driver))
	}
	if req.ConfigFrom != nil && req.ConfigFrom.Network != "" {
		if err := a.applyConfigFrom(n, req); err != nil {
			return nil, nil, err
		}
	}
	if req.IPAM != nil && req.IPAM.Driver != "" && req.IPAM.Driver != "default" && req.ConfigFrom == nil {
		return nil, nil, badRequest("IPAM driver %q is not supported: meshnet has only the default IPAM driver", req.IPAM.Driver)
	}
	if req.IPAM != nil && req.ConfigFrom == nil {
		n.IPAMDriver, n.IPAMOptions = "default", maps.Clone(req.IPAM.Options)
		if n.Subnets, err = parseIPAMConfig(req.IPAM.Config); err != nil {
			return nil, nil, err
		}
	}
	for _, s := range n.Subnets {
		if !s.Subnet.Addr().Is4() && !n.IPv6 {
			return nil, nil, badRequest("subnet %s is IPv6: create the network with --ipv6", s.Subnet)
		}
	}
	if !req.ConfigOnly {
		a.mu.Lock()
		others := slices.Collect(maps.Values(a.networks))
		a.mu.Unlock()
		if err := d.Configure(n, others); err != nil {
			return nil, nil, err
		}
	}
	return n, d, nil
}

// predefinedName is the name of a driver's predefined network.
func (a *Agent) predefinedName(driverName string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.networks {
		if n.Predefined && n.Driver == driverName {
			return n.Name
		}
	}
	return driverName
}

// applyConfigFrom copies the IPAM configuration and options of a
// config-only network; the request must not set its own.
func (a *Agent) applyConfigFrom(n *driver.Network, req api.NetworkCreate) error {
	if req.IPAM != nil && len(req.IPAM.Config) > 0 || len(req.Options) > 0 || req.EnableIPv6 {
		return badRequest("a network created --config-from another takes its subnets, options and IPv6 setting from it; do not give them again")
	}
	from, err := a.lookupNetwork(req.ConfigFrom.Network)
	if err != nil {
		return notFound("config network %s not found", req.ConfigFrom.Network)
	}
	if !from.ConfigOnly {
		return badRequest("network %s is not a config-only network", from.Name)
	}
	n.ConfigFrom = from.Name
	n.Subnets = slices.Clone(from.Subnets)
	n.IPv6 = from.IPv6
	n.IPAMDriver, n.IPAMOptions = from.IPAMDriver, maps.Clone(from.IPAMOptions)
	n.Options = maps.Clone(from.Options)
	return nil
}

// parseIPAMConfig turns --subnet/--gateway/--ip-range/--aux-address into
// normalized subnet configs, with one clear sentence per mistake.
func parseIPAMConfig(cfgs []api.IPAMConfig) ([]ipam.SubnetConfig, error) {
	var out []ipam.SubnetConfig
	for _, c := range cfgs {
		var sc ipam.SubnetConfig
		var err error
		if c.Subnet == "" {
			return nil, badRequest("every IPAM config needs a subnet")
		}
		if sc.Subnet, err = netip.ParsePrefix(c.Subnet); err != nil {
			return nil, badRequest("invalid subnet %q: it is not a CIDR such as 10.1.0.0/24", c.Subnet)
		}
		if c.Gateway != "" {
			if sc.Gateway, err = netip.ParseAddr(c.Gateway); err != nil {
				return nil, badRequest("invalid gateway %q: it is not an IP address", c.Gateway)
			}
		}
		if c.IPRange != "" {
			if sc.IPRange, err = netip.ParsePrefix(c.IPRange); err != nil {
				return nil, badRequest("invalid IP range %q: it is not a CIDR", c.IPRange)
			}
		}
		for name, ip := range c.AuxAddress {
			addr, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, badRequest("invalid auxiliary address %s=%q: it is not an IP address", name, ip)
			}
			if sc.AuxAddresses == nil {
				sc.AuxAddresses = map[string]netip.Addr{}
			}
			sc.AuxAddresses[name] = addr
		}
		if sc, err = sc.Normalize(); err != nil {
			return nil, badRequest("%s", err.Error())
		}
		for _, o := range out {
			if o.Subnet.Overlaps(sc.Subnet) {
				return nil, badRequest("subnets %s and %s overlap", o.Subnet, sc.Subnet)
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// leaseLocalSubnets gives a local network whose driver gives interfaces
// its subnets: the requested ones, checked against every network this
// host knows and its routes, or free ones from the local pools.
func (a *Agent) leaseLocalSubnets(n *driver.Network, d driver.Driver) error {
	if n.ConfigOnly || !d.Capabilities().Interfaces {
		return nil
	}
	a.mu.Lock()
	var taken []netip.Prefix
	for _, o := range a.networks {
		if o.ConfigOnly {
			continue
		}
		for _, s := range o.Subnets {
			taken = append(taken, s.Subnet)
		}
	}
	a.mu.Unlock()
	taken = append(taken, hostRoutes()...)
	for _, s := range n.Subnets {
		if err := ipam.CheckOverlap(s.Subnet, taken); err != nil {
			return err
		}
	}
	need := []bool{true}
	if n.IPv6 {
		need = append(need, false)
	}
	for _, v4 := range need {
		if _, ok := n.Subnet(v4); ok {
			continue
		}
		p, err := ipam.FreeSubnet(a.cfg.LocalPools, v4, taken)
		if err != nil {
			return err
		}
		sc, err := ipam.SubnetConfig{Subnet: p}.Normalize()
		if err != nil {
			return err
		}
		n.Subnets = append(n.Subnets, sc)
		taken = append(taken, p)
	}
	return nil
}

// NetworkRemove deletes a network that has no endpoints on any host.
func (a *Agent) NetworkRemove(ctx context.Context, ref string) (err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a.knowNetworks(ctx, ref)
	return a.removeNetwork(ctx, ref)
}

func (a *Agent) removeNetwork(ctx context.Context, ref string) error {
	n, err := a.lookupNetwork(ref)
	if err != nil {
		return err
	}
	if n.Predefined {
		return service.Errorf(service.ErrForbidden, "%s is a pre-defined network and cannot be removed", n.Name)
	}
	if eps := a.endpointsOf(n); len(eps) > 0 {
		return inUse(n, eps)
	}
	if n.Global() {
		ns, err := a.netStore(ctx)
		if err != nil {
			return err
		}
		err = ns.Remove(ctx, n.ID)
		var used *netstore.InUseError
		if errors.As(err, &used) {
			var who []string
			for _, l := range used.Leases {
				who = append(who, l.Addr.String()+" on "+l.Owner.Node)
			}
			return inUse(n, who)
		}
		if err != nil {
			a.noteStoreErr(err)
			return err
		}
	}
	a.mu.Lock()
	_, known := a.networks[n.ID] // the watch may have dropped it already
	delete(a.networks, n.ID)
	delete(a.versions, n.ID)
	a.mu.Unlock()
	if known {
		a.networksChanged(n.ID)
	}
	a.log.Info("network removed", "name", n.Name, "id", n.ID)
	return nil
}

func inUse(n *driver.Network, who []string) error {
	return conflict("network %s has active endpoints (%s): remove or disconnect them first", n.Name, strings.Join(who, ", "))
}

// endpointsOf names the network's endpoints on every host we know of.
func (a *Agent) endpointsOf(n *driver.Network) []string {
	var names []string
	a.mu.Lock()
	for _, e := range a.endpoints {
		if e.NetworkID == n.ID {
			names = append(names, a.endpointName(e))
		}
	}
	a.mu.Unlock()
	if n.Global() {
		for _, ep := range a.gossip.Endpoints(n.ID) {
			if ep.Node != a.cfg.NodeName {
				names = append(names, ep.Name+" on "+ep.Node)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// endpointName is how an endpoint is named to the user: its sandbox's
// name while joined, else its own. The caller holds mu.
func (a *Agent) endpointName(e *endpointRecord) string {
	if s := a.sandboxes[e.SandboxID]; s != nil {
		return s.Name
	}
	if e.Name != "" {
		return e.Name
	}
	return e.ID[:12]
}

// NetworkPrune removes every user network without endpoints.
func (a *Agent) NetworkPrune(ctx context.Context) (_ api.PruneResponse, err error) {
	defer func() { err = a.serviceError(err) }()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a.mu.Lock()
	var cands []*driver.Network
	for _, n := range a.networks {
		if !n.Predefined {
			cands = append(cands, n)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(cands, func(x, y *driver.Network) int { return strings.Compare(x.Name, y.Name) })
	resp := api.PruneResponse{NetworksDeleted: []string{}}
	var errs []error
	for _, n := range cands {
		if len(a.endpointsOf(n)) > 0 {
			continue
		}
		err := a.removeNetwork(ctx, n.ID)
		switch {
		case err == nil:
			resp.NetworksDeleted = append(resp.NetworksDeleted, n.Name)
		case errors.Is(err, service.ErrConflict), errors.Is(err, ipam.ErrContention):
			// in use, or changed meanwhile: not prunable now
		default:
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return resp, errs[0]
	}
	return resp, nil
}

func subnetList(s []ipam.SubnetConfig) string {
	var out []string
	for _, c := range s {
		out = append(out, c.Subnet.String())
	}
	return strings.Join(out, ",")
}
