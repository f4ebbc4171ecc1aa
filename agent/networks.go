package agent

// Network create, remove and lookup. Global (overlay) networks are created
// in one store transaction together with their leases and name
// (ipam.LeaseNetwork); local ones (bridge, null, host, config-only) live in
// the data dir.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/overlay"
)

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Driver options understood (-o K=V). Docker's long names and short ones.
const (
	optMTU        = "com.docker.network.driver.mtu"
	optBridgeName = "com.docker.network.bridge.name"
	optVNI        = "com.docker.network.driver.overlay.vxlanid_list"
)

var knownOptions = map[string][]string{
	api.DriverOverlay: {optMTU, "mtu", optVNI, "vni"},
	api.DriverBridge:  {optMTU, "mtu", optBridgeName, "bridge"},
	api.DriverNull:    {},
	api.DriverHost:    {},
}

// opTimeout bounds one API operation's store work.
const opTimeout = 30 * time.Second

// findNetwork looks a network up by full id, name, or unique id prefix.
// The caller holds mu.
func (a *Agent) findNetwork(ref string) (*networkRecord, error) {
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
	var match []*networkRecord
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

func (a *Agent) lookupNetwork(ref string) (*networkRecord, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.findNetwork(ref)
}

// CreateNetwork validates req and creates the network.
func (a *Agent) CreateNetwork(ctx context.Context, req api.NetworkCreate) (api.CreateResponse, error) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	rec, err := a.networkFromRequest(req)
	if err != nil {
		return api.CreateResponse{}, err
	}
	a.mu.Lock()
	for _, n := range a.networks {
		if n.Name == rec.Name {
			a.mu.Unlock()
			return api.CreateResponse{}, conflict("network with name %s already exists", rec.Name)
		}
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if rec.global() {
		err = a.createGlobal(ctx, rec)
	} else {
		err = a.createLocal(rec)
	}
	if err != nil {
		return api.CreateResponse{}, err
	}
	a.log.Info("network created", "name", rec.Name, "id", rec.ID, "driver", rec.Driver, "vni", rec.VNI, "subnets", subnetList(rec.Subnets))
	a.mu.Lock()
	a.networks[rec.ID] = rec
	a.mu.Unlock()
	a.networksChanged()
	return api.CreateResponse{ID: rec.ID}, nil
}

// networkFromRequest checks every field of req and returns the record to
// create (leases not yet taken).
func (a *Agent) networkFromRequest(req api.NetworkCreate) (*networkRecord, error) {
	rec := &networkRecord{ID: newID(), Name: req.Name, Driver: req.Driver, Created: time.Now().UTC(),
		IPv6: req.EnableIPv6, Internal: req.Internal, Attachable: req.Attachable, ConfigOnly: req.ConfigOnly,
		Options: maps.Clone(req.Options), Labels: maps.Clone(req.Labels)}
	switch {
	case req.Name == "":
		return nil, badRequest("a network needs a name")
	case len(req.Name) > 64 || !validName.MatchString(req.Name):
		return nil, badRequest("invalid network name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64 characters", req.Name)
	case req.Ingress:
		return nil, badRequest("ingress networks are a Swarm routing-mesh feature that meshnet does not have")
	}
	if rec.Driver == "" {
		rec.Driver = api.DriverBridge
	}
	known, ok := knownOptions[rec.Driver]
	if !ok {
		return nil, badRequest("unknown network driver %q: meshnet has overlay, bridge, null and host", rec.Driver)
	}
	if req.ConfigOnly && req.ConfigFrom != nil && req.ConfigFrom.Network != "" {
		return nil, badRequest("a config-only network cannot take its configuration from another network")
	}
	if req.ConfigOnly {
		rec.Driver = api.DriverNull
		known = slices.Concat(knownOptions[api.DriverOverlay], knownOptions[api.DriverBridge])
	}
	if req.ConfigFrom != nil && req.ConfigFrom.Network != "" {
		if err := a.applyConfigFrom(rec, req); err != nil {
			return nil, err
		}
	}
	for k := range rec.Options {
		if !slices.Contains(known, k) {
			if len(known) == 0 {
				return nil, badRequest("the %s driver takes no options (got %q)", rec.Driver, k)
			}
			return nil, badRequest("option %q is not known to the %s driver (it knows %s)", k, rec.Driver, strings.Join(known, ", "))
		}
	}
	scope := api.ScopeLocal
	if rec.Driver == api.DriverOverlay {
		scope = api.ScopeGlobal
	}
	switch {
	case req.Scope == "" || req.Scope == scope || (req.ConfigOnly && req.Scope == api.ScopeLocal):
	case req.Scope == api.ScopeLocal || req.Scope == api.ScopeGlobal:
		return nil, badRequest("the %s driver makes %s networks; --scope %s is not supported", rec.Driver, scope, req.Scope)
	default:
		return nil, badRequest("invalid scope %q: use local or global", req.Scope)
	}
	rec.Scope = scope
	if req.ConfigOnly {
		rec.Scope = api.ScopeLocal
	}
	if (rec.Driver == api.DriverNull || rec.Driver == api.DriverHost) && !req.ConfigOnly {
		return nil, badRequest("only one instance of the %q network is allowed: use the predefined one", nameOfDriver(rec.Driver))
	}
	if req.IPAM != nil && req.IPAM.Driver != "" && req.IPAM.Driver != "default" && req.ConfigFrom == nil {
		return nil, badRequest("IPAM driver %q is not supported: meshnet has only the default IPAM driver", req.IPAM.Driver)
	}
	if req.IPAM != nil && req.ConfigFrom == nil {
		rec.IPAMDriver, rec.IPAMOptions = "default", maps.Clone(req.IPAM.Options)
		subnets, err := parseIPAMConfig(req.IPAM.Config)
		if err != nil {
			return nil, err
		}
		rec.Subnets = subnets
	}
	for _, s := range rec.Subnets {
		if !s.Subnet.Addr().Is4() && !rec.IPv6 {
			return nil, badRequest("subnet %s is IPv6: create the network with --ipv6", s.Subnet)
		}
	}
	if err := a.applyOptions(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func nameOfDriver(driver string) string {
	if driver == api.DriverNull {
		return "none"
	}
	return driver
}

// applyConfigFrom copies the IPAM configuration and options of a
// config-only network; the request must not set its own.
func (a *Agent) applyConfigFrom(rec *networkRecord, req api.NetworkCreate) error {
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
	rec.ConfigFrom = from.Name
	rec.Subnets = slices.Clone(from.Subnets)
	rec.IPv6 = from.IPv6
	rec.IPAMDriver, rec.IPAMOptions = from.IPAMDriver, maps.Clone(from.IPAMOptions)
	rec.Options = maps.Clone(from.Options)
	return nil
}

// applyOptions reads the driver options into the record.
func (a *Agent) applyOptions(rec *networkRecord) error {
	for k, v := range rec.Options {
		switch k {
		case optMTU, "mtu":
			mtu, err := strconv.Atoi(v)
			if err != nil || mtu < 576 || mtu > 65535 {
				return badRequest("invalid MTU %q: give a number from 576 to 65535", v)
			}
			if rec.Driver == api.DriverOverlay && a.mtu > 0 && mtu > a.mtu-overlay.EncapOverhead {
				return badRequest("MTU %d is too large for an overlay network: the underlay MTU %d leaves at most %d after the VXLAN header", mtu, a.mtu, a.mtu-overlay.EncapOverhead)
			}
			rec.MTU = mtu
		case optVNI, "vni":
			vni, err := strconv.ParseUint(v, 10, 32)
			if err != nil || vni < 1 || vni > uint64(ipam.DefaultVNIMax) {
				return badRequest("invalid VNI %q: give one number from 1 to %d", v, ipam.DefaultVNIMax)
			}
			rec.VNI = uint32(vni)
		case optBridgeName, "bridge":
			if len(v) == 0 || len(v) > 15 || strings.ContainsAny(v, "/ \t:") {
				return badRequest("invalid bridge name %q: at most 15 characters, no '/', ':' or spaces", v)
			}
			rec.Bridge = v
		}
	}
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

// createGlobal leases the VNI and subnets and writes the network record
// and its name in one transaction.
func (a *Agent) createGlobal(ctx context.Context, rec *networkRecord) error {
	store, alloc, err := a.usableStore()
	if err != nil {
		return err
	}
	_, err = alloc.LeaseNetwork(ctx, ipam.NetworkRequest{ID: rec.ID, VNI: rec.VNI, Subnets: rec.Subnets, IPv6: rec.IPv6},
		func(l ipam.NetworkLease) ([]kvstore.Op, error) {
			rec.VNI, rec.Subnets = l.VNI, l.Subnets
			b, err := json.Marshal(rec)
			if err != nil {
				return nil, err
			}
			return []kvstore.Op{
				{Kind: kvstore.OpCreate, Key: namesPrefix + rec.Name, Value: []byte(rec.ID)},
				{Kind: kvstore.OpCreate, Key: networksPrefix + rec.ID, Value: b},
			}, nil
		})
	var te *kvstore.TxnError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te) && te.Key == namesPrefix+rec.Name:
		return conflict("network with name %s already exists", rec.Name)
	case errors.Is(err, kvstore.ErrUnavailable):
		a.noteStoreErr(err)
		// The transaction may have committed: then the network exists.
		checkCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, gerr := store.Get(checkCtx, networksPrefix+rec.ID); gerr == nil {
			return nil
		}
		return err
	}
	return err
}

// createLocal picks a bridge network's subnet and device name and saves it.
func (a *Agent) createLocal(rec *networkRecord) error {
	if rec.Driver == api.DriverBridge && !rec.ConfigOnly {
		if err := a.leaseLocalSubnets(rec); err != nil {
			return err
		}
		if rec.Bridge == "" {
			rec.Bridge = "br-" + rec.ID[:12]
		}
		a.mu.Lock()
		for _, n := range a.networks {
			if n.Bridge == rec.Bridge {
				a.mu.Unlock()
				return conflict("bridge %s is already used by network %s", rec.Bridge, n.Name)
			}
		}
		a.mu.Unlock()
	}
	return nil
}

// leaseLocalSubnets checks requested subnets against every network this
// host knows, or picks one from the local pools.
func (a *Agent) leaseLocalSubnets(rec *networkRecord) error {
	a.mu.Lock()
	var taken []netip.Prefix
	for _, n := range a.networks {
		if n.ConfigOnly {
			continue
		}
		for _, s := range n.Subnets {
			taken = append(taken, s.Subnet)
		}
	}
	a.mu.Unlock()
	taken = append(taken, hostRoutes()...)
	for _, s := range rec.Subnets {
		if err := ipam.CheckOverlap(s.Subnet, taken); err != nil {
			return err
		}
	}
	need := []bool{true}
	if rec.IPv6 {
		need = append(need, false)
	}
	for _, v4 := range need {
		if _, ok := rec.subnet(v4); ok {
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
		rec.Subnets = append(rec.Subnets, sc)
		taken = append(taken, p)
	}
	return nil
}

// RemoveNetwork deletes a network that has no endpoints on any host.
func (a *Agent) RemoveNetwork(ctx context.Context, ref string) error {
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
		return &apiError{403, fmt.Sprintf("%s is a pre-defined network and cannot be removed", n.Name)}
	}
	if eps := a.endpointsOf(n); len(eps) > 0 {
		return conflict("network %s has active endpoints (%s): remove or disconnect them first", n.Name, strings.Join(eps, ", "))
	}
	if n.global() {
		if err := a.removeGlobal(ctx, n); err != nil {
			return err
		}
	}
	a.mu.Lock()
	delete(a.networks, n.ID)
	a.mu.Unlock()
	a.networksChanged()
	a.log.Info("network removed", "name", n.Name, "id", n.ID)
	return nil
}

// endpointsOf names the network's endpoints on every host we know of.
func (a *Agent) endpointsOf(n *networkRecord) []string {
	var names []string
	a.mu.Lock()
	for _, s := range a.sandboxes {
		if s.endpoint(n.ID) != nil {
			names = append(names, s.Name)
		}
	}
	a.mu.Unlock()
	if n.global() {
		for _, ep := range a.gossip.Endpoints(n.ID) {
			if ep.Node != a.cfg.NodeName {
				names = append(names, ep.Name+" on "+ep.Node)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// removeGlobal deletes the record, name and leases in one transaction,
// refusing while any address of the network is still leased.
func (a *Agent) removeGlobal(ctx context.Context, n *networkRecord) error {
	store, alloc, err := a.usableStore()
	if err != nil {
		return err
	}
	leases, err := alloc.Addresses(ctx, n.ID)
	if err != nil {
		a.noteStoreErr(err)
		return err
	}
	if len(leases) > 0 {
		var who []string
		for _, l := range leases {
			who = append(who, l.Addr.String()+" on "+l.Owner.Node)
		}
		return conflict("network %s has active endpoints (%s): remove or disconnect them first", n.Name, strings.Join(who, ", "))
	}
	kv, err := store.Get(ctx, networksPrefix+n.ID)
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		return nil // removed meanwhile from another host
	}
	if err != nil {
		a.noteStoreErr(err)
		return err
	}
	ops := []kvstore.Op{{Kind: kvstore.OpCompareDelete, Key: networksPrefix + n.ID, Version: kv.Version}}
	if nk, err := store.Get(ctx, namesPrefix+n.Name); err == nil && string(nk.Value) == n.ID {
		ops = append(ops, kvstore.Op{Kind: kvstore.OpCompareDelete, Key: namesPrefix + n.Name, Version: nk.Version})
	}
	release, err := alloc.ReleaseOps(ctx, n.lease())
	if err != nil {
		a.noteStoreErr(err)
		return err
	}
	if err := store.Txn(ctx, append(ops, release...)...); err != nil {
		a.noteStoreErr(err)
		if errors.Is(err, kvstore.ErrKeyModified) || errors.Is(err, kvstore.ErrKeyNotFound) {
			return conflict("network %s changed while it was being removed; try again", n.Name)
		}
		return err
	}
	return nil
}

// PruneNetworks removes every user network without endpoints.
func (a *Agent) PruneNetworks(ctx context.Context) (api.PruneResponse, error) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a.mu.Lock()
	var cands []*networkRecord
	for _, n := range a.networks {
		if !n.Predefined {
			cands = append(cands, n)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(cands, func(x, y *networkRecord) int { return strings.Compare(x.Name, y.Name) })
	resp := api.PruneResponse{NetworksDeleted: []string{}}
	var errs []error
	for _, n := range cands {
		if len(a.endpointsOf(n)) > 0 {
			continue
		}
		err := a.removeNetwork(ctx, n.ID)
		var ae *apiError
		switch {
		case err == nil:
			resp.NetworksDeleted = append(resp.NetworksDeleted, n.Name)
		case errors.As(err, &ae) && ae.status == 409:
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
