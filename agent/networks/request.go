package networks

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/internal/ids"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/internal/names"
)

// maxNameLen is the longest network name.
const maxNameLen = 64

// fromRequest checks every field of req and returns the network to
// create (leases not yet taken) with its driver.
func (m *Manager) fromRequest(req api.NetworkCreate) (*driver.Network, driver.Driver, error) {
	n := &driver.Network{ID: ids.New(), Name: req.Name, Driver: req.Driver, Created: time.Now().UTC(),
		IPv6: req.EnableIPv6, Internal: req.Internal, Attachable: req.Attachable, ConfigOnly: req.ConfigOnly,
		Options: maps.Clone(req.Options), Labels: maps.Clone(req.Labels)}
	switch {
	case req.Name == "":
		return nil, nil, service.Invalidf("a network needs a name")
	case !names.Valid(req.Name, maxNameLen):
		return nil, nil, service.Invalidf("invalid network name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64 characters", req.Name)
	case req.Ingress:
		return nil, nil, service.Invalidf("ingress networks are a Swarm routing-mesh feature that meshnet does not have")
	case req.ConfigOnly && req.ConfigFrom != nil && req.ConfigFrom.Network != "":
		return nil, nil, service.Invalidf("a config-only network cannot take its configuration from another network")
	}
	d, err := m.drivers.Get(req.Driver)
	if err != nil {
		return nil, nil, err
	}
	n.Driver = d.Name()
	caps := d.Capabilities()
	if req.ConfigOnly {
		// Docker records config-only networks under the null driver;
		// their options are checked by the driver of the network that
		// takes its configuration from them.
		if d, err = m.drivers.Get(m.drivers.ConfigOnly()); err != nil {
			return nil, nil, err
		}
		n.Driver, caps = d.Name(), driver.Capabilities{Scope: driver.ScopeLocal}
		if err := driver.CheckOptions(n.Driver, n.Options, m.drivers.AllOptions()); err != nil {
			return nil, nil, err
		}
	}
	switch {
	case req.Scope == "" || req.Scope == caps.Scope:
	case req.Scope == driver.ScopeLocal || req.Scope == driver.ScopeGlobal:
		return nil, nil, service.Invalidf("the %s driver makes %s networks; --scope %s is not supported", n.Driver, caps.Scope, req.Scope)
	default:
		return nil, nil, service.Invalidf("invalid scope %q: use local or global", req.Scope)
	}
	n.Scope = caps.Scope
	others := m.Table.All()
	if slices.ContainsFunc(others, func(o *driver.Network) bool { return o.Name == n.Name }) {
		return nil, nil, service.Conflictf("network with name %s already exists", n.Name)
	}
	if caps.Singleton && !req.ConfigOnly {
		return nil, nil, service.Invalidf("only one instance of the %q network is allowed: use the predefined one", m.predefinedName(n.Driver))
	}
	if req.ConfigFrom != nil && req.ConfigFrom.Network != "" {
		if err := m.applyConfigFrom(n, req); err != nil {
			return nil, nil, err
		}
	}
	if req.IPAM != nil && req.IPAM.Driver != "" && req.IPAM.Driver != "default" && req.ConfigFrom == nil {
		return nil, nil, service.Invalidf("IPAM driver %q is not supported: meshnet has only the default IPAM driver", req.IPAM.Driver)
	}
	if req.IPAM != nil && req.ConfigFrom == nil {
		n.IPAMDriver, n.IPAMOptions = "default", maps.Clone(req.IPAM.Options)
		if n.Subnets, err = parseIPAMConfig(req.IPAM.Config); err != nil {
			return nil, nil, err
		}
	}
	for _, s := range n.Subnets {
		if !s.Subnet.Addr().Is4() && !n.IPv6 {
			return nil, nil, service.Invalidf("subnet %s is IPv6: create the network with --ipv6", s.Subnet)
		}
	}
	if !req.ConfigOnly {
		if err := d.Configure(n, others); err != nil {
			return nil, nil, err
		}
	}
	return n, d, nil
}

// predefinedName is the name of a driver's predefined network.
func (m *Manager) predefinedName(driverName string) string {
	for _, n := range m.Table.All() {
		if n.Predefined && n.Driver == driverName {
			return n.Name
		}
	}
	return driverName
}

// applyConfigFrom copies the IPAM configuration and options of a
// config-only network; the request must not set its own.
func (m *Manager) applyConfigFrom(n *driver.Network, req api.NetworkCreate) error {
	if req.IPAM != nil && len(req.IPAM.Config) > 0 || len(req.Options) > 0 || req.EnableIPv6 {
		return service.Invalidf("a network created --config-from another takes its subnets, options and IPv6 setting from it; do not give them again")
	}
	from, err := m.Table.Find(req.ConfigFrom.Network)
	if err != nil {
		return service.NotFoundf("config network %s not found", req.ConfigFrom.Network)
	}
	if !from.ConfigOnly {
		return service.Invalidf("network %s is not a config-only network", from.Name)
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
			return nil, service.Invalidf("every IPAM config needs a subnet")
		}
		if sc.Subnet, err = netip.ParsePrefix(c.Subnet); err != nil {
			return nil, service.Invalidf("invalid subnet %q: it is not a CIDR such as 10.1.0.0/24", c.Subnet)
		}
		if c.Gateway != "" {
			if sc.Gateway, err = netip.ParseAddr(c.Gateway); err != nil {
				return nil, service.Invalidf("invalid gateway %q: it is not an IP address", c.Gateway)
			}
		}
		if c.IPRange != "" {
			if sc.IPRange, err = netip.ParsePrefix(c.IPRange); err != nil {
				return nil, service.Invalidf("invalid IP range %q: it is not a CIDR", c.IPRange)
			}
		}
		for name, ip := range c.AuxAddress {
			addr, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, service.Invalidf("invalid auxiliary address %s=%q: it is not an IP address", name, ip)
			}
			if sc.AuxAddresses == nil {
				sc.AuxAddresses = map[string]netip.Addr{}
			}
			sc.AuxAddresses[name] = addr
		}
		if sc, err = sc.Normalize(); err != nil {
			return nil, service.Invalidf("%s", err.Error())
		}
		for _, o := range out {
			if o.Subnet.Overlaps(sc.Subnet) {
				return nil, service.Invalidf("subnets %s and %s overlap", o.Subnet, sc.Subnet)
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// leaseLocalSubnets gives a local network whose driver gives interfaces
// its subnets: the requested ones, checked against every network this
// host knows and its routes, or free ones from the local pools.
func (m *Manager) leaseLocalSubnets(n *driver.Network, d driver.Driver) error {
	if n.ConfigOnly || !d.Capabilities().Interfaces {
		return nil
	}
	var taken []netip.Prefix
	for _, o := range m.Table.All() {
		if o.ConfigOnly {
			continue
		}
		for _, s := range o.Subnets {
			taken = append(taken, s.Subnet)
		}
	}
	if m.cfg.HostRoutes != nil {
		taken = append(taken, m.cfg.HostRoutes()...)
	}
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
		p, err := ipam.FreeSubnet(m.cfg.LocalPools, v4, taken)
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

// EnsurePredefined makes the predefined networks those the drivers want
// now, keeping ids (and what the drivers keep) of the ones in the data
// dir, and dropping those no driver wants any more. It runs at start,
// before anything else uses the table.
func (m *Manager) EnsurePredefined() error {
	for _, d := range m.drivers.All() {
		p, ok := d.(driver.Predefiner)
		if !ok {
			continue
		}
		old := map[string]*driver.Network{}
		for _, n := range m.Table.All() {
			if n.Predefined && n.Driver == d.Name() {
				old[n.Name] = n
			}
		}
		nets, err := p.Predefined(old)
		if err != nil {
			return err
		}
		for _, n := range nets {
			if n.ID == "" {
				n.ID = ids.New()
			}
		}
		m.Table.replacePredefined(d.Name(), nets)
	}
	return nil
}
