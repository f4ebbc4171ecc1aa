package networks

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/agent/service"
)

// Store is the cluster store as the networks use it (agent/storeconn).
type Store interface {
	// NetStore returns the store's network records, waiting a moment for
	// a store that has never answered yet; it fails with why the store
	// cannot be used now.
	NetStore(ctx context.Context) (*netstore.Store, error)
	// NetStoreNow is NetStore without waiting.
	NetStoreNow() (*netstore.Store, error)
	// NoteErr tells the connection about a failed store call.
	NoteErr(err error)
}

// Config is what the manager needs of the agent's configuration.
type Config struct {
	// LocalPools are where automatic subnets of local networks come
	// from.
	LocalPools []ipam.AddressPool
	// HostRoutes lists the destinations the host routes, which automatic
	// local subnets avoid.
	HostRoutes func() []netip.Prefix
}

// Manager runs the networks' life cycle on the Table. Creating and
// removing are operations: the caller serialises them (the controller's
// operation lock). The mirror methods (ReplaceGlobal, PutGlobal,
// DeleteGlobal) are the store watch's, safe at any time.
type Manager struct {
	Table   *Table
	drivers *driver.Registry
	store   Store
	cfg     Config
	log     *slog.Logger
	// changed hears of every change of the table: it persists it,
	// subscribes to new networks' endpoints, reprograms.
	changed func(ids ...string)
}

// NewManager returns a manager of the table's networks.
func NewManager(t *Table, drivers *driver.Registry, store Store, cfg Config, changed func(ids ...string), log *slog.Logger) *Manager {
	return &Manager{Table: t, drivers: drivers, store: store, cfg: cfg, changed: changed, log: log}
}

// Driver returns a network's driver; a network whose driver this agent
// lacks (a record written by a newer agent) has none.
func (m *Manager) Driver(n *driver.Network) (driver.Driver, bool) {
	return m.drivers.Lookup(n.Driver)
}

// Create checks the request, takes the network's leases and records it.
func (m *Manager) Create(ctx context.Context, req api.NetworkCreate) (*driver.Network, error) {
	if req.ConfigFrom != nil && req.ConfigFrom.Network != "" {
		m.Know(ctx, req.ConfigFrom.Network)
	}
	n, d, err := m.fromRequest(req)
	if err != nil {
		return nil, err
	}
	if d.Capabilities().Scope == driver.ScopeGlobal && !n.ConfigOnly {
		ns, err := m.store.NetStore(ctx)
		if err != nil {
			return nil, err
		}
		if err := ns.Create(ctx, n, d.Capabilities().VNI); err != nil {
			m.store.NoteErr(err)
			return nil, err
		}
	} else if err := m.leaseLocalSubnets(n, d); err != nil {
		return nil, err
	}
	m.log.Info("network created", "name", n.Name, "id", n.ID, "driver", n.Driver, "vni", n.VNI, "subnets", subnetList(n.Subnets))
	if m.Table.add(n) {
		m.changed(n.ID)
	}
	return n, nil
}

// Plan checks the request and returns the network Create would make now,
// its subnets picked, taking no lease.
func (m *Manager) Plan(ctx context.Context, req api.NetworkCreate) (*driver.Network, error) {
	n, d, err := m.fromRequest(req)
	if err != nil {
		return nil, err
	}
	if d.Capabilities().Scope != driver.ScopeGlobal || n.ConfigOnly {
		return n, m.leaseLocalSubnets(n, d)
	}
	ns, err := m.store.NetStore(ctx)
	if err != nil {
		return nil, err
	}
	if n.Subnets, err = ns.Alloc().PlanNetwork(ctx, ipam.NetworkRequest{ID: n.ID, Subnets: n.Subnets, IPv6: n.IPv6}); err != nil {
		m.store.NoteErr(err)
		return nil, err
	}
	return n, nil
}

// Remove deletes a network (its leases in the store, for a global one).
// The caller has checked that no endpoint of this host is on it; the
// store refuses while another host's are.
func (m *Manager) Remove(ctx context.Context, n *driver.Network, inUse func(who []string) error) error {
	if n.Predefined {
		return service.Errorf(service.ErrForbidden, "%s is a pre-defined network and cannot be removed", n.Name)
	}
	if n.Global() {
		ns, err := m.store.NetStore(ctx)
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
			return inUse(who)
		}
		if err != nil {
			m.store.NoteErr(err)
			return err
		}
	}
	if m.Table.drop(n.ID) { // the watch may have dropped it already
		m.changed(n.ID)
	}
	m.log.Info("network removed", "name", n.Name, "id", n.ID)
	return nil
}

// Know refreshes the mirror if one of refs is not in it: a network
// created on another host a moment ago is known here at once, before the
// watch delivers it.
func (m *Manager) Know(ctx context.Context, refs ...string) {
	for _, r := range refs {
		if _, err := m.Table.Find(r); err != nil {
			m.Refresh(ctx)
			return
		}
	}
}

// Refresh re-reads the store's networks into the mirror when the store
// answers.
func (m *Manager) Refresh(ctx context.Context) {
	ns, err := m.store.NetStoreNow()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	recs, _, err := ns.List(ctx)
	if err != nil {
		m.store.NoteErr(err)
		return
	}
	m.ReplaceGlobal(recs)
}

// ReplaceGlobal makes the mirror hold exactly the listed global networks.
func (m *Manager) ReplaceGlobal(recs []netstore.Record) {
	if changed := m.Table.replaceGlobal(recs); len(changed) > 0 {
		m.changed(changed...)
	}
}

// PutGlobal puts a store record of a global network into the mirror.
func (m *Manager) PutGlobal(r netstore.Record) {
	if m.Table.putGlobal(r) {
		m.changed(r.Network.ID)
	}
}

// DeleteGlobal drops a global network from the mirror.
func (m *Manager) DeleteGlobal(id string) {
	if m.Table.dropGlobal(id) {
		m.changed(id)
	}
}

// Default is the network a sandbox created without one joins: the
// predefined network whose driver ranks highest; nil if there is none.
func (m *Manager) Default() *driver.Network {
	var best *driver.Network
	rank := 0
	for _, n := range m.Table.All() {
		if !n.Predefined {
			continue
		}
		if d, ok := m.Driver(n); ok && d.Capabilities().DefaultRank > rank {
			best, rank = n, d.Capabilities().DefaultRank
		}
	}
	return best
}

// MTU is the MTU the network's interfaces get here, as its driver says.
func (m *Manager) MTU(n *driver.Network) int {
	if d, ok := m.Driver(n); ok && !n.ConfigOnly {
		return d.MTU(n)
	}
	return n.MTU
}

func subnetList(s []ipam.SubnetConfig) string {
	var out []string
	for _, c := range s {
		out = append(out, c.Subnet.String())
	}
	return strings.Join(out, ",")
}
