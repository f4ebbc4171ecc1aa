package dockerplugin

// The sweep: leases of Docker's that dockerd forgot. dockerd gives an
// endpoint's lease back through the plugin (Leave, DeleteEndpoint,
// ReleaseAddress); when those calls are lost (the agent was down while a
// container was removed, and dockerd gave up on it), the lease would stay
// taken in the cluster for good. Every sweepEvery, the plugin asks dockerd
// which endpoints it has, and releases what it holds for endpoints dockerd
// no longer has, and addresses no endpoint took, once older than
// sweepGrace (an endpoint is in the plugin's state a moment before dockerd
// shows it).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"
)

const (
	sweepEvery = 30 * time.Second
	sweepGrace = 30 * time.Second
)

// sweep releases what dockerd has forgotten; it changes nothing unless
// dockerd answered for every network.
func (p *Plugin) sweep(ctx context.Context) error {
	p.mu.Lock()
	nets := maps.Clone(p.state.Networks)
	p.mu.Unlock()
	present := map[string]bool{}
	for id := range nets {
		eps, err := p.docker.Endpoints(ctx, id)
		if errors.Is(err, ErrNoSuchNetwork) {
			continue
		}
		if err != nil {
			return fmt.Errorf("listing the endpoints of Docker network %.12s: %w", id, err)
		}
		for _, ep := range eps {
			present[ep] = true
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := func(t time.Time) bool { return time.Since(t) > sweepGrace }
	var errs []error
	swept := 0
	for id, b := range p.state.Endpoints {
		if !present[id] && old(b.Since) {
			delete(p.state.Endpoints, id) // its address goes below
			swept++
		}
	}
	bound := map[string]bool{}
	for _, b := range p.state.Endpoints {
		bound[b.Endpoint] = true
	}
	for key, l := range p.state.Addresses {
		if bound[l.Endpoint] || !old(l.Since) {
			continue
		}
		if err := p.dropEndpoint(ctx, l.Endpoint); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(p.state.Addresses, key)
		swept++
	}
	if swept > 0 {
		p.log.Info("released what dockerd forgot", "endpoints and addresses", swept)
		errs = append(errs, p.state.save())
	}
	return errors.Join(errs...)
}
