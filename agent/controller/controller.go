// Package controller is the one implementation of service.Service: the
// place where an operation's steps, their rollback and the operation lock
// live. It composes the agent's components:
//
//   - networks (agent/networks): the networks and their life cycle;
//   - sandboxes (agent/sandboxes): this host's sandbox and endpoint
//     records; the namespaces and files behind them (package sandbox,
//     through Namespaces);
//   - the store connection (agent/storeconn): leases in the cluster store;
//   - membership (agent/membership): announcing endpoints to the cluster;
//   - the dataplane (agent/dataplane): programming the kernel;
//   - the state file (agent/statefile): saving what changed.
//
// Every operation that changes networks, endpoints or sandboxes holds
// opMu from its checks to its last step, so that checks ("name free",
// "no endpoints") and the changes relying on them do not interleave; the
// orphan sweep and the reaper take it too. Store calls and kernel writes
// happen under it. Each step adds what undoes it to the operation's
// rollback, so an operation completes or leaves nothing behind. Reads
// (list, inspect) take no operation lock: the components' records are
// values, consistent without one.
//
// Lock order: opMu, then any component's own lock (each a leaf).
package controller

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnet/meshnet/agent/dataplane"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/membership"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/agent/networks"
	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/agent/statefile"
	"github.com/meshnet/meshnet/agent/storeconn"
	"github.com/meshnet/meshnet/kvstore"
)

// opTimeout bounds one operation's store work.
const opTimeout = 30 * time.Second

// Config is what the controller needs of the agent's configuration.
type Config struct {
	NodeName   string
	VTEP       netip.Addr
	StoreURL   string
	DataDir    string
	Version    string
	GossipPort int
	VXLANPort  int
	// IPTables: the agent owns a packet filter (published ports need
	// it).
	IPTables bool
	// Warnings are the configuration's security warnings (Info).
	Warnings []string
}

// Deps are the components the controller composes.
type Deps struct {
	Networks  *networks.Manager
	Records   *sandboxes.Table
	Store     *storeconn.Conn
	Members   *membership.Membership
	Dataplane *dataplane.Dataplane
	State     *statefile.Keeper
	// Namespaces is the kernel side of sandboxes; nil: package sandbox.
	Namespaces Namespaces
	// PortUsable tries to bind a host port; nil: in this namespace.
	PortUsable func(ports.Mapping) error
	Metrics    prometheus.Gatherer
}

// Controller implements service.Service.
type Controller struct {
	cfg Config
	log *slog.Logger
	Deps

	// The steps operations are made of, each with the components it
	// needs.
	eps   *endpoints
	sbs   *sandboxSteps
	views *views

	opMu sync.Mutex // held by every operation that changes anything; see the package comment
}

var _ service.Service = (*Controller)(nil)

// New returns the controller of the components in deps.
func New(cfg Config, deps Deps, log *slog.Logger) *Controller {
	if deps.Namespaces == nil {
		deps.Namespaces = kernelNamespaces{}
	}
	if deps.PortUsable == nil {
		deps.PortUsable = portUsable
	}
	c := &Controller{cfg: cfg, log: log, Deps: deps}
	c.eps = &endpoints{node: cfg.NodeName, vtep: cfg.VTEP, nets: deps.Networks, recs: deps.Records, store: deps.Store,
		members: deps.Members, dp: deps.Dataplane, log: log}
	c.sbs = &sandboxSteps{cfg: cfg, nets: deps.Networks, recs: deps.Records, dp: deps.Dataplane, ns: deps.Namespaces,
		portUsable: deps.PortUsable, log: log}
	c.views = &views{node: cfg.NodeName, nets: deps.Networks, recs: deps.Records, members: deps.Members, dp: deps.Dataplane}
	return c
}

// Holding runs fn, for the store's lease housekeeping, with a test of the
// address leases this host's endpoints hold, while no operation takes or
// gives one back. Leases in networks this host does not know (those of a
// Docker IPAM plugin's pools) are held too: they are not endpoints'.
func (c *Controller) Holding(fn func(holds func(ipam.AddressLease) bool) error) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	mine := map[string]bool{}
	for _, e := range c.Records.Endpoints() {
		mine[e.ID] = true
	}
	global := map[string]bool{}
	for _, n := range c.Networks.Table.All() {
		global[n.ID] = n.Global()
	}
	return fn(func(l ipam.AddressLease) bool { return mine[l.Owner.EndpointID] || !global[l.NetworkID] })
}

// undo collects the steps that take back a half-done operation.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// serviceError gives an error of the layers below the kind the service
// answers it with (service.Error), keeping or writing its one-sentence
// message: the one place lower layers' errors are mapped. Store failures
// say which store and that it is unreachable, without the client
// library's details. Errors of no known kind are internal failures and
// pass unchanged.
func serviceError(storeURL string, err error) error {
	var (
		se   *service.Error
		down *storeconn.DownError
	)
	kind := func(k error) error { return &service.Error{Kind: k, Msg: err.Error()} }
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return err
	case errors.As(err, &down):
		return kind(service.ErrUnavailable)
	case errors.Is(err, driver.ErrInvalid), errors.Is(err, ipam.ErrInvalid), errors.Is(err, ports.ErrInvalid):
		return kind(service.ErrInvalid)
	case errors.Is(err, netstore.ErrNotFound):
		return kind(service.ErrNotFound)
	case errors.Is(err, ipam.ErrSubnetOverlap), errors.Is(err, ipam.ErrAddressInUse),
		errors.Is(err, ipam.ErrVNIInUse), errors.Is(err, ipam.ErrPoolExhausted),
		errors.Is(err, netstore.ErrNameTaken), errors.Is(err, netstore.ErrRemoving),
		errors.Is(err, ports.ErrUnavailable):
		return kind(service.ErrConflict)
	case errors.Is(err, ipam.ErrContention):
		return kind(service.ErrUnavailable)
	case errors.Is(err, kvstore.ErrPermission):
		return service.Unavailablef("the cluster store %s refused the agent's credentials", storeURL)
	case errors.Is(err, kvstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return service.Unavailablef("the cluster store %s is unreachable; try again when it is back", storeURL)
	}
	return err
}

// operation takes the operation lock and bounds the operation's store
// work; done releases both.
func (c *Controller) operation(ctx context.Context) (_ context.Context, done func()) {
	c.opMu.Lock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	return ctx, func() {
		cancel()
		c.opMu.Unlock()
	}
}
