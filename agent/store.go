package agent

// The agent's side of the cluster store: connecting (and starting the
// embedded server), registering the node, mirroring networks/ (through
// agent/netstore), tracking whether the store answers, and the lease
// housekeeping agent/ipam does (this node's orphans, departed nodes'
// leases). Everything here retries in the background: the agent runs, with
// its local networks and existing sandboxes, while the store is down.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/kvstore/embedded"
)

const (
	nodesPrefix = "nodes/"
	// nodeTTL is the registration's lease: a node that stops refreshing
	// disappears from nodes/ after about this long.
	nodeTTL = 15 * time.Second
	// reclaimInterval: how often leases are swept. Those of a node are
	// reclaimed only after it has been absent from nodes/ and gossip for
	// node-reclaim-after, as seen by this agent (a node whose agent is
	// down still forwards for its sandboxes); the sweep runs at least
	// twice in that time.
	reclaimInterval = time.Minute
)

// EmbeddedClientPort and EmbeddedPeerPort are where the embedded store
// listens (clients on the advertise address, the peer port on loopback).
const (
	EmbeddedClientPort = 2379
	EmbeddedPeerPort   = 2380
)

// nodeInfo is the value of nodes/<node>.
type nodeInfo struct {
	Address    string `json:"address"`
	VTEP       string `json:"vtep"`
	GossipPort int    `json:"gossip_port"`
	Version    string `json:"version"`
}

// netStore returns the network records in the store, or a storeDownError
// when the store is down. Once the store has answered since start, a
// store known to be down fails at once (global operations fail fast);
// before that, it waits for the first answer up to the store timeout: a
// script that starts the agent and creates a network at once should not
// fail because the connection is still being made.
func (a *Agent) netStore(ctx context.Context) (*netstore.Store, error) {
	select {
	case <-a.firstUp:
	default:
		t := time.NewTimer(a.cfg.Store.Timeout)
		select {
		case <-a.firstUp:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	return a.netStoreNow()
}

// netStoreNow is netStore without waiting: for best-effort work (giving
// a lease back) that the orphan sweep does later if the store is down.
func (a *Agent) netStoreNow() (*netstore.Store, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nets == nil || a.storeErr != nil {
		cause := a.storeErr
		if cause == nil {
			cause = errors.New("still connecting")
		}
		return nil, &storeDownError{cause}
	}
	return a.nets, nil
}

// storeAnswered records that the store answers; the first time, it
// releases the operations waiting in netStore. The caller holds mu.
func (a *Agent) storeAnswered() {
	a.storeErr = nil
	a.gate.markUp()
	if !a.everUp {
		a.everUp = true
		close(a.firstUp)
	}
}

// noteStoreErr marks the store down when err says it is unreachable.
func (a *Agent) noteStoreErr(err error) {
	if errors.Is(err, kvstore.ErrUnavailable) {
		a.mu.Lock()
		if a.storeErr == nil {
			a.log.Warn("cluster store unreachable", "err", err)
			a.storeErr = errors.New(a.cfg.StoreURL + " does not answer")
			a.gate.markDown()
		}
		a.mu.Unlock()
	}
}

// storeReady reports whether the store is connected and answering.
func (a *Agent) storeReady() (kvstore.Store, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.store, a.store != nil && a.storeErr == nil
}

// storeLoop connects, registers, and mirrors networks/ until ctx ends.
func (a *Agent) storeLoop(ctx context.Context) {
	store, err := a.connectStore(ctx)
	if err != nil {
		return // ctx done
	}
	gated := gatedStore{Store: store, gate: a.gate}
	alloc, err := ipam.New(gated, ipam.Config{Pools: a.cfg.GlobalPools})
	if err != nil {
		a.log.Error("configuring IPAM", "err", err)
		return
	}
	nets := netstore.New(gated, alloc, a.log)
	a.mu.Lock()
	a.store, a.nets = store, nets
	if a.storeErr == nil { // openStore's ping answered
		a.storeAnswered()
	}
	a.mu.Unlock()
	a.storeUp <- struct{}{}

	a.goRun(func() { a.registerLoop(ctx, store) })
	a.goRun(func() { a.healthLoop(ctx, store) })
	a.goRun(func() { a.leaseLoop(ctx, store, alloc) })
	a.watchNetworks(ctx, nets)
}

// connectStore opens the store client (starting the embedded server
// first), retrying until it succeeds or ctx ends.
func (a *Agent) connectStore(ctx context.Context) (kvstore.Store, error) {
	b := backoff.New(500*time.Millisecond, 10*time.Second)
	for {
		s, err := a.openStore(ctx)
		if err == nil {
			return s, nil
		}
		a.log.Warn("cannot connect to the cluster store yet; retrying", "err", err)
		a.mu.Lock()
		a.storeErr = err
		a.mu.Unlock()
		if !b.Wait(ctx) {
			return nil, ctx.Err()
		}
	}
}

func (a *Agent) openStore(ctx context.Context) (kvstore.Store, error) {
	cfg := a.cfg.Store
	if cfg.Backend == kvstore.BackendEmbedded {
		if a.embed == nil {
			host := a.vtep.String()
			srv, err := embedded.Start(ctx, embedded.Config{
				Name:      a.cfg.NodeName,
				Dir:       filepath.Join(a.cfg.DataDir, "etcd"),
				ClientURL: "http://" + net.JoinHostPort(host, strconv.Itoa(EmbeddedClientPort)),
				PeerURL:   "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(EmbeddedPeerPort)),
			})
			if err != nil {
				return nil, err
			}
			a.embed = srv
			a.log.Info("embedded cluster store serving", "endpoints", srv.Endpoints())
		}
		cfg.Endpoints = a.embed.Endpoints()
	}
	s, err := backends.Open(cfg)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := kvstore.Ping(pingCtx, s); err != nil && !errors.Is(err, kvstore.ErrUnavailable) {
		s.Close()
		return nil, err // wrong credentials: say so, keep retrying
	} else if err != nil {
		a.noteStoreErr(err)
	} else {
		a.mu.Lock()
		a.storeErr = nil
		a.mu.Unlock()
	}
	return s, nil
}

func (a *Agent) nodeValue() []byte {
	b, _ := json.Marshal(nodeInfo{Address: a.vtep.String(), VTEP: a.vtep.String(),
		GossipPort: a.cfg.GossipPort, Version: Version})
	return b
}

// registerLoop registers nodes/<node>; the registration keeps itself alive
// and re-creates the key after an outage.
func (a *Agent) registerLoop(ctx context.Context, store kvstore.Store) {
	b := backoff.New(500*time.Millisecond, 10*time.Second)
	for {
		_, err := store.Register(ctx, nodesPrefix+a.cfg.NodeName, a.nodeValue(), nodeTTL)
		if err == nil {
			a.log.Info("registered in the cluster store", "key", nodesPrefix+a.cfg.NodeName)
			<-ctx.Done()
			// Leave the key to expire: a restarting agent is still a node.
			return
		}
		a.noteStoreErr(err)
		a.log.Warn("registering the node", "err", err)
		if !b.Wait(ctx) {
			return
		}
	}
}

// healthLoop pings the store so that global operations fail fast while it
// is down (see storeGate) and work again as soon as it is back.
func (a *Agent) healthLoop(ctx context.Context, store kvstore.Store) {
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	failed := 0 // probes unanswered in a row
	for {
		pingCtx, cancel := context.WithTimeout(ctx, healthTimeout)
		err := kvstore.Ping(pingCtx, store)
		cancel()
		if ctx.Err() != nil {
			return
		}
		failed++
		if err == nil {
			failed = 0
		}
		a.mu.Lock()
		switch {
		case err == nil && a.storeErr != nil:
			a.log.Info("cluster store reachable again")
			a.storeAnswered()
		case err == nil:
			a.storeAnswered()
		case a.storeErr == nil && (failed >= healthFailures || !errors.Is(err, kvstore.ErrUnavailable)):
			a.log.Warn("cluster store unreachable", "err", err)
			a.storeErr = errors.New(a.cfg.StoreURL + " does not answer")
			if errors.Is(err, kvstore.ErrPermission) {
				a.storeErr = errors.New(a.cfg.StoreURL + " refused the credentials")
			}
			a.gate.markDown()
		}
		a.mu.Unlock()
		if failed > 0 && failed < healthFailures {
			continue // ask again at once: one slow answer is not an outage
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// watchNetworks mirrors networks/ into a.networks: a listing, then a watch
// from the listing's version (the watch itself survives outages).
func (a *Agent) watchNetworks(ctx context.Context, nets *netstore.Store) {
	b := backoff.New(500*time.Millisecond, 10*time.Second)
	var (
		recs []netstore.Record
		ver  uint64
		err  error
	)
	for {
		recs, ver, err = nets.List(ctx)
		if err == nil {
			break
		}
		a.noteStoreErr(err)
		if !b.Wait(ctx) {
			return
		}
	}
	a.replaceGlobalNetworks(recs)
	events, err := nets.Watch(ctx, ver)
	if err != nil {
		a.log.Error("watching networks", "err", err)
		return
	}
	for ev := range events {
		switch ev.Type {
		case kvstore.EventReset:
			a.replaceGlobalNetworks(ev.Snapshot)
		case kvstore.EventPut:
			a.putGlobalNetwork(ev.Record)
		case kvstore.EventDelete:
			a.mu.Lock()
			n, ok := a.networks[ev.ID]
			ok = ok && n.Global()
			if ok {
				delete(a.networks, ev.ID)
				delete(a.versions, ev.ID)
			}
			a.mu.Unlock()
			if ok {
				a.networksChanged(ev.ID)
			}
		}
	}
}

// putGlobalNetwork puts a record into the mirror. A record the mirror
// already holds (the echo of this agent's own create) only updates the
// version, and so does the mark of a removal in progress: nothing is saved
// or reprogrammed twice. A marked record of a network the mirror has
// dropped already (this agent removed it) is not brought back.
func (a *Agent) putGlobalNetwork(r netstore.Record) {
	a.mu.Lock()
	id := r.Network.ID
	old := a.networks[id]
	if old == nil && r.Network.Removing {
		a.mu.Unlock()
		return
	}
	same := old != nil && sameRecord(old, r.Network)
	a.networks[id] = r.Network
	a.versions[id] = r.Version
	a.mu.Unlock()
	if !same {
		a.networksChanged(id)
	}
}

// sameRecord reports whether two records of a network say the same, but
// for the mark of a removal in progress. They are compared as stored.
func sameRecord(x, y *driver.Network) bool {
	cx, cy := *x, *y
	cx.Removing, cy.Removing = false, false
	bx, err1 := json.Marshal(&cx)
	by, err2 := json.Marshal(&cy)
	return err1 == nil && err2 == nil && bytes.Equal(bx, by)
}

// replaceGlobalNetworks makes the mirror hold exactly the listed global
// networks; local ones stay.
func (a *Agent) replaceGlobalNetworks(recs []netstore.Record) {
	fresh := map[string]netstore.Record{}
	for _, r := range recs {
		fresh[r.Network.ID] = r
	}
	var changed []string
	a.mu.Lock()
	for id, n := range a.networks {
		if n.Global() && fresh[id].Network == nil {
			delete(a.networks, id)
			delete(a.versions, id)
			changed = append(changed, id)
		}
	}
	for id, r := range fresh {
		if old := a.networks[id]; old == nil || !sameRecord(old, r.Network) {
			changed = append(changed, id)
		}
		// The record always goes with its version (a lease is fenced by
		// the pair), even when only the removal mark differs.
		a.networks[id] = r.Network
		a.versions[id] = r.Version
	}
	a.mu.Unlock()
	if len(changed) > 0 {
		a.networksChanged(changed...)
	}
}

// refreshNetworks re-reads networks/ when the store answers, so that a
// network created on another host a moment ago is known here at once,
// before the watch delivers it.
func (a *Agent) refreshNetworks(ctx context.Context) {
	if _, ok := a.storeReady(); !ok {
		return
	}
	a.mu.Lock()
	nets := a.nets
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	recs, _, err := nets.List(ctx)
	if err != nil {
		a.noteStoreErr(err)
		return
	}
	a.replaceGlobalNetworks(recs)
}

// knowNetworks refreshes the mirror if one of refs is not in it.
func (a *Agent) knowNetworks(ctx context.Context, refs ...string) {
	a.mu.Lock()
	missing := false
	for _, r := range refs {
		if _, err := a.findNetwork(r); err != nil {
			missing = true
		}
	}
	a.mu.Unlock()
	if missing {
		a.refreshNetworks(ctx)
	}
}

// networksChanged follows a change of the network mirror: persist it,
// subscribe to new networks' endpoints, reprogram what changed.
func (a *Agent) networksChanged(ids ...string) {
	a.saveState()
	a.syncSubscriptions()
	for _, id := range ids {
		a.recon.MarkDirty(id)
	}
}

// registeredNodes lists nodes/ and returns the store version of the
// listing.
func registeredNodes(ctx context.Context, store kvstore.Store) (map[string]nodeInfo, uint64, error) {
	kvs, ver, err := store.List(ctx, nodesPrefix)
	if err != nil {
		return nil, 0, err
	}
	nodes := make(map[string]nodeInfo, len(kvs))
	for _, kv := range kvs {
		var ni nodeInfo
		if json.Unmarshal(kv.Value, &ni) == nil {
			nodes[strings.TrimPrefix(kv.Key, nodesPrefix)] = ni
		}
	}
	return nodes, ver, nil
}

// leaseLoop gives back, now and then, this node's address leases that no
// endpoint holds (left behind when a release failed: the store was down
// during sandbox rm -f, or the agent died halfway through an operation),
// and the leases of nodes gone for good (absent from nodes/ and gossip
// for node-reclaim-after, as this agent sees it).
func (a *Agent) leaseLoop(ctx context.Context, store kvstore.Store, alloc *ipam.Allocator) {
	reclaimer := alloc.NewReclaimer(a.cfg.NodeReclaimAfter)
	t := time.NewTicker(min(reclaimInterval, a.cfg.NodeReclaimAfter/2))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		if err := a.sweepOwnLeases(ctx, alloc); err != nil {
			a.noteStoreErr(err)
			a.log.Warn("releasing this node's orphaned leases", "err", err)
		}
		nodes, ver, err := registeredNodes(ctx, store)
		if err == nil {
			present := slices.Collect(maps.Keys(nodes))
			for _, m := range a.gossip.Members() {
				present = append(present, m.Name)
			}
			var reclaimed []ipam.AddressLease
			reclaimed, err = reclaimer.Reclaim(ctx, append(present, a.cfg.NodeName), ver)
			for _, l := range reclaimed {
				a.log.Info("reclaimed the address lease of a departed node", "network", l.NetworkID, "addr", l.Addr, "node", l.Owner.Node)
			}
		}
		if err != nil {
			a.noteStoreErr(err)
			a.log.Warn("reclaiming leases of departed nodes", "err", err)
		}
	}
}

// sweepOwnLeases releases the leases naming this node but no endpoint it
// has. It holds opMu, so no operation is between leasing and recording.
func (a *Agent) sweepOwnLeases(ctx context.Context, alloc *ipam.Allocator) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	mine := map[string]bool{}
	for id := range a.endpoints {
		mine[id] = true
	}
	networks := map[string]bool{}
	for id, n := range a.networks {
		networks[id] = n.Global()
	}
	a.mu.Unlock()
	// Only leases in networks: addresses of IPAM pools (a Docker IPAM
	// plugin's) are not endpoints of this agent's.
	keep := func(l ipam.AddressLease) bool { return mine[l.Owner.EndpointID] || !networks[l.NetworkID] }
	swept, err := alloc.SweepOrphans(ctx, a.cfg.NodeName, keep)
	for _, l := range swept {
		a.log.Info("released an orphaned address lease", "network", l.NetworkID, "addr", l.Addr)
	}
	return err
}
