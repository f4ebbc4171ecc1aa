// Package dockerplugin is meshnet as Docker's network and IPAM plugin,
// both named meshnet: an adapter that turns Docker's remote-driver calls
// into the operations of a service.Service, and keeps the local dockerd's
// meshnet networks equal to the cluster's global networks.
//
// How Docker's calls map onto meshnet's:
//
//	IPAM RequestPool            the subnet of the network to be (given, or
//	                            planned by NetworkPlan); the pool id is the
//	                            subnet, so it stays meaningful across restarts
//	IPAM RequestAddress         gateway: the network's (no lease); a
//	                            container's: EndpointCreate, the global lease
//	NetworkDriver CreateNetwork bind to the meshnet network of that subnet
//	                            (a network another host made), or check the
//	                            request and create it once its name is known
//	CreateEndpoint              bind Docker's endpoint to the leased one
//	Join                        the sandbox for Docker's namespace (made on
//	                            the first join), EndpointJoin with Handoff:
//	                            Docker moves the interface in itself
//	Leave, DeleteEndpoint       EndpointLeave; the sandbox goes with its last
//	IPAM ReleaseAddress         EndpointDelete: the lease is given back
//	DeleteNetwork               NetworkRemove, on every host
//
// Docker tells a driver the network's id, never its name: the name is read
// from dockerd (Options.Docker) once CreateNetwork has returned and dockerd
// has stored the network, and only then is the meshnet network created, so
// a create that fails at that point (a name another host took a moment
// before) removes the Docker network again and says why in the log. Every
// other check happens before CreateNetwork returns, so its errors reach
// `docker network create` itself.
//
// The adapter depends on agent/service and agent/api only. What it must
// remember across restarts (which Docker network and endpoint is which
// meshnet one) is in its state file; requests are decoded with a size
// bound and checked before anything is done.
package dockerplugin

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/meshnet/meshnet/agent/service"
)

// Name is the name of the network driver and of the IPAM driver.
const Name = "meshnet"

// Docker is what the plugin asks of the local dockerd (package client's
// Docker over moby's client library).
type Docker interface {
	// Networks lists dockerd's networks whose driver is meshnet.
	Networks(ctx context.Context) ([]DockerNetwork, error)
	// Network returns one network by id; ErrNoSuchNetwork if there is none.
	Network(ctx context.Context, id string) (DockerNetwork, error)
	// CreateNetwork creates a meshnet network in dockerd.
	CreateNetwork(ctx context.Context, n DockerNetwork) error
	// RemoveNetwork removes a network from dockerd.
	RemoveNetwork(ctx context.Context, id string) error
	// EndpointNames returns the DNS names of the container that has the
	// endpoint on the network: its name and its aliases there;
	// ErrNoSuchEndpoint while dockerd does not show it.
	EndpointNames(ctx context.Context, networkID, endpointID string) (name string, aliases []string, err error)
	// Endpoints lists the ids of the endpoints dockerd has on a network;
	// ErrNoSuchNetwork if there is no such network.
	Endpoints(ctx context.Context, networkID string) ([]string, error)
}

// DockerNetwork is a network as dockerd describes it.
type DockerNetwork struct {
	ID, Name, Driver string
	Subnet, Gateway  string
	IPRange          string
	Internal         bool
	Options, Labels  map[string]string
}

// Options configure a Plugin.
type Options struct {
	// Docker is the local dockerd; nil when there is none to talk to
	// (networks made through Docker are then named after their id).
	Docker Docker
	// StateFile keeps the plugin's bindings across restarts.
	StateFile string
	Log       *slog.Logger
	// MirrorEvery is how often the cluster's networks are compared with
	// dockerd's (default 1s).
	MirrorEvery time.Duration
}

// Plugin serves Docker's calls over a service.
type Plugin struct {
	svc    service.Service
	docker Docker
	log    *slog.Logger
	every  time.Duration

	mu      sync.Mutex // serialises the calls that change bindings
	state   *state
	pending map[string]*pendingNetwork    // by subnet: made in Docker, not yet in meshnet
	ranges  map[netip.Prefix]netip.Prefix // --ip-range by subnet, from RequestPool to CreateNetwork

	ctx    context.Context // the plugin's life: background naming, mirroring
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}
}

// pendingNetwork is a network Docker is creating through this plugin,
// waiting for its name.
type pendingNetwork struct {
	dockerID string
	done     chan struct{} // closed when it is created in meshnet, or failed
	err      error         // why it failed; set before done closes
}

// New returns a plugin over svc, its bindings read from opts.StateFile.
func New(svc service.Service, opts Options) (*Plugin, error) {
	st, err := loadState(opts.StateFile)
	if err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MirrorEvery <= 0 {
		opts.MirrorEvery = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Plugin{svc: svc, docker: opts.Docker, log: opts.Log, every: opts.MirrorEvery, state: st,
		pending: map[string]*pendingNetwork{}, ranges: map[netip.Prefix]netip.Prefix{}, ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1)}, nil
}

// Start runs the mirror of the cluster's networks into dockerd, if the
// plugin has a dockerd.
func (p *Plugin) Start() {
	if p.docker == nil {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.mirrorLoop()
	}()
}

// Close stops the plugin's background work and waits for it.
func (p *Plugin) Close() {
	p.cancel()
	p.wg.Wait()
}

// Kick asks the mirror to compare the networks now.
func (p *Plugin) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}
