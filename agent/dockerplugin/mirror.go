package dockerplugin

// Names and the mirror. A network made through Docker gets its meshnet
// network once dockerd has stored it under its name; and the local
// dockerd's meshnet networks are kept equal to the cluster's global
// networks, by name: one created on another host, through Docker or
// agentctl, is made here; one removed from the cluster is removed here.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
)

// nameWait bounds how long a network made through Docker waits for dockerd
// to show it.
const nameWait = time.Minute

// spawn runs fn in the background, for the plugin's life.
func (p *Plugin) spawn(fn func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		fn()
	}()
}

// dockerName waits until dockerd shows the network and returns it. Without
// a dockerd the network is named after its id.
func (p *Plugin) dockerName(id string) (DockerNetwork, error) {
	if p.docker == nil {
		return DockerNetwork{ID: id, Name: "docker-" + id[:min(12, len(id))]}, nil
	}
	ctx, cancel := context.WithTimeout(p.ctx, nameWait)
	defer cancel()
	var last error
	for wait := 2 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		n, err := p.docker.Network(ctx, id)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, ErrNoSuchNetwork) {
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = errors.New("it never appeared")
			}
			return DockerNetwork{}, fmt.Errorf("reading the name of Docker network %.12s from dockerd: %w", id, last)
		case <-time.After(wait):
		}
	}
}

// nameNetwork creates in meshnet the network Docker made, under its Docker
// name; if that fails, the Docker network is removed again.
func (p *Plugin) nameNetwork(dockerID string, subnet netip.Prefix, create api.NetworkCreate, pn *pendingNetwork) {
	dn, err := p.dockerName(dockerID)
	var resp api.CreateResponse
	if err == nil {
		create.Name, create.Labels = dn.Name, dn.Labels
		ctx, cancel := context.WithTimeout(p.ctx, callTimeout)
		resp, err = p.svc.NetworkCreate(ctx, create)
		cancel()
	}
	p.mu.Lock()
	delete(p.pending, subnet.String())
	_, stillWanted := p.state.Networks[dockerID]
	switch {
	case err != nil:
		pn.err = fmt.Errorf("network %s could not be made in meshnet: %w", dn.Name, err)
		delete(p.state.Networks, dockerID)
	case !stillWanted: // removed from Docker meanwhile
		ctx, cancel := context.WithTimeout(p.ctx, callTimeout)
		err = p.svc.NetworkRemove(ctx, resp.ID)
		cancel()
		pn.err = fmt.Errorf("network %s was removed from Docker while it was being made", dn.Name)
	default:
		p.state.Networks[dockerID] = networkBinding{Network: resp.ID, Subnet: subnet.String()}
	}
	serr := p.state.save()
	close(pn.done)
	p.mu.Unlock()
	switch {
	case pn.err != nil && stillWanted:
		p.log.Error("a network made with docker network create is removed again", "network", dn.Name, "docker-id", dockerID, "err", pn.err)
		p.removeDocker(dockerID)
	case err != nil:
		p.log.Warn("removing a network removed from Docker while it was made", "network", dn.Name, "err", err)
	case serr != nil:
		p.log.Error("saving the Docker plugin's state", "err", serr)
	default:
		p.log.Info("network made through Docker", "network", dn.Name, "id", resp.ID, "docker-id", dockerID, "subnet", subnet)
	}
	p.Kick()
}

// confirmName checks that a Docker network bound to an existing meshnet
// network has its name; one that does not is removed from Docker (meshnet
// networks have one name in the cluster).
func (p *Plugin) confirmName(dockerID string, n api.Network) {
	if p.docker == nil {
		return
	}
	dn, err := p.dockerName(dockerID)
	if err != nil {
		p.log.Warn("checking a Docker network's name", "docker-id", dockerID, "err", err)
		return
	}
	if dn.Name == n.Name {
		return
	}
	p.log.Error("a Docker network with the subnet of meshnet network "+n.Name+" has another name: it is removed",
		"network", dn.Name, "subnet", dn.Subnet)
	p.mu.Lock()
	delete(p.state.Networks, dockerID) // not the meshnet network's to remove
	err = p.state.save()
	p.mu.Unlock()
	if err != nil {
		p.log.Error("saving the Docker plugin's state", "err", err)
	}
	p.removeDocker(dockerID)
}

func (p *Plugin) removeDocker(dockerID string) {
	if p.docker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, callTimeout)
	defer cancel()
	if err := p.docker.RemoveNetwork(ctx, dockerID); err != nil {
		p.log.Error("removing a network from dockerd", "docker-id", dockerID, "err", err)
	}
}

// mirrorLoop compares the cluster's networks with dockerd's every
// p.every, and at once when this host's view of the cluster's networks
// changes (looked at every tenth of p.every: a local read) or when kicked.
func (p *Plugin) mirrorLoop() {
	t := time.NewTicker(p.every / 10)
	defer t.Stop()
	failing := false
	var seen string
	var last, swept time.Time
	for {
		if time.Since(swept) >= sweepEvery {
			ctx, cancel := context.WithTimeout(p.ctx, callTimeout)
			if err := p.sweep(ctx); err != nil {
				p.log.Warn("releasing what dockerd forgot (retrying)", "err", err)
			}
			cancel()
			swept = time.Now()
		}
		view := p.clusterView()
		if view != seen || time.Since(last) >= p.every { // a failure is retried at p.every
			err := p.mirror()
			switch {
			case errors.Is(err, ErrNoDockerd) && !failing:
				p.log.Info("no dockerd to keep in step yet; looking every second", "err", err)
			case err != nil && !failing:
				p.log.Warn("keeping dockerd's meshnet networks in step (retrying)", "err", err)
			case err == nil && failing:
				p.log.Info("dockerd's meshnet networks are in step again")
			}
			failing, seen, last = err != nil, view, time.Now()
		}
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
			seen = ""
		}
	}
}

// clusterView sums up this host's view of the cluster's networks: their
// ids and names.
func (p *Plugin) clusterView() string {
	ctx, cancel := context.WithTimeout(p.ctx, time.Second)
	defer cancel()
	nets, err := p.svc.NetworkList(ctx, map[string][]string{"scope": {api.ScopeGlobal}, "driver": {api.DriverOverlay}})
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, n := range nets {
		b.WriteString(n.ID + " " + n.Name + "\n")
	}
	return b.String()
}

// mirror makes dockerd's meshnet networks the cluster's global networks
// of the overlay driver: the missing ones created, those whose meshnet
// network is gone removed.
func (p *Plugin) mirror() error {
	ctx, cancel := context.WithTimeout(p.ctx, callTimeout)
	defer cancel()
	nets, err := p.svc.NetworkList(ctx, map[string][]string{"scope": {api.ScopeGlobal}, "driver": {api.DriverOverlay}})
	if err != nil {
		return err
	}
	have, err := p.docker.Networks(ctx)
	if err != nil {
		return fmt.Errorf("listing dockerd's networks: %w", err)
	}
	byName := map[string]DockerNetwork{}
	for _, d := range have {
		byName[d.Name] = d
	}
	meshnet := map[string]bool{}
	var errs []error
	for _, n := range nets {
		meshnet[n.ID] = true
		if n.ConfigOnly {
			continue
		}
		if _, ok := byName[n.Name]; ok {
			continue
		}
		pl, err := poolOf(n)
		if err != nil {
			continue
		}
		d := DockerNetwork{Name: n.Name, Subnet: pl.subnet.String(), Internal: n.Internal, Options: n.Options, Labels: n.Labels}
		if g := gatewayOf(n); g.IsValid() {
			d.Gateway = g.String()
		}
		if pl.ipRange.IsValid() {
			d.IPRange = pl.ipRange.String()
		}
		if err := p.docker.CreateNetwork(ctx, d); err != nil {
			errs = append(errs, fmt.Errorf("making network %s in dockerd: %w", n.Name, err))
			continue
		}
		p.log.Info("network of the cluster made in dockerd", "network", n.Name)
	}
	for _, d := range have {
		p.mu.Lock()
		b, bound := p.state.Networks[d.ID]
		p.mu.Unlock()
		if !bound || b.Network == "" || meshnet[b.Network] {
			continue
		}
		// Confirm with the store before removing: the list is this
		// host's mirror of it.
		if _, err := p.svc.NetworkInspect(ctx, b.Network); !errors.Is(err, service.ErrNotFound) {
			continue
		}
		p.log.Info("network removed from the cluster, removed from dockerd", "network", d.Name)
		if err := p.docker.RemoveNetwork(ctx, d.ID); err != nil {
			errs = append(errs, fmt.Errorf("removing network %s from dockerd: %w", d.Name, err))
		}
	}
	return errors.Join(errs...)
}

// nameEndpoint gives a joined meshnet endpoint the names of its Docker
// container (its name, --network-alias) once dockerd shows them, so that
// containers on other hosts resolve them.
func (p *Plugin) nameEndpoint(dockerNet, dockerEP, meshEP string) {
	if p.docker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, nameWait)
	defer cancel()
	var name string
	var aliases []string
	for wait := 2 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		var err error
		if name, aliases, err = p.docker.EndpointNames(ctx, dockerNet, dockerEP); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			if !errors.Is(err, ErrNoSuchEndpoint) {
				p.log.Warn("reading a container's names from dockerd", "endpoint", dockerEP, "err", err)
			}
			return
		case <-time.After(wait):
		}
	}
	aliases = slices.DeleteFunc(slices.Clone(aliases), func(a string) bool { return a == name })
	uctx, ucancel := context.WithTimeout(p.ctx, callTimeout)
	defer ucancel()
	if _, err := p.svc.EndpointUpdate(uctx, meshEP, api.EndpointUpdate{Name: name, Aliases: aliases}); err != nil && !errors.Is(err, service.ErrNotFound) {
		p.log.Warn("naming a container's endpoint", "container", name, "endpoint", meshEP, "err", err)
	}
}
