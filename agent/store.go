package agent

// The agent's side of the cluster store: connecting (and starting the
// embedded server), registering the node, mirroring networks/, tracking
// whether the store answers, and reclaiming the leases of nodes gone for
// good. Everything here retries in the background: the agent runs, with
// its local networks and existing sandboxes, while the store is down.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/kvstore/embedded"
)

const (
	nodesPrefix    = "nodes/"
	networksPrefix = "networks/"
	namesPrefix    = "names/"
	// nodeTTL is the registration's lease: a node that stops refreshing
	// disappears from nodes/ after about this long.
	nodeTTL = 15 * time.Second
	// healthInterval is how often the agent pings the store.
	healthInterval = 2 * time.Second
	// reclaimInterval and reclaimGrace: leases of a node are reclaimed only
	// after it has been absent from nodes/ and gossip for reclaimGrace, as
	// seen by this agent (a node whose agent is down still forwards for
	// its sandboxes).
	reclaimInterval = time.Minute
	reclaimGrace    = 10 * time.Minute
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

// storeDownError is returned by global operations while the store is not
// usable; the API answers 503.
type storeDownError struct{ cause error }

func (e *storeDownError) Error() string {
	return "the cluster store is unreachable: " + e.cause.Error()
}
func (e *storeDownError) Unwrap() error { return kvstore.ErrUnavailable }

// usableStore returns the store and allocator, or a storeDownError at once
// when the store is known to be down (global operations fail fast).
func (a *Agent) usableStore() (kvstore.Store, *ipam.Allocator, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.store == nil || a.storeErr != nil {
		cause := a.storeErr
		if cause == nil {
			cause = errors.New("not connected yet")
		}
		return nil, nil, &storeDownError{cause}
	}
	return a.store, a.alloc, nil
}

// noteStoreErr marks the store down when err says it is unreachable.
func (a *Agent) noteStoreErr(err error) {
	if errors.Is(err, kvstore.ErrUnavailable) {
		a.mu.Lock()
		if a.storeErr == nil {
			a.log.Warn("cluster store unreachable", "err", err)
			a.storeErr = errors.New(a.cfg.StoreURL + " does not answer")
		}
		a.mu.Unlock()
	}
}

// storeLoop connects, registers, and mirrors networks/ until ctx ends.
func (a *Agent) storeLoop(ctx context.Context) {
	store, err := a.connectStore(ctx)
	if err != nil {
		return // ctx done
	}
	alloc, err := ipam.New(store, ipam.Config{Pools: a.cfg.GlobalPools})
	if err != nil {
		a.log.Error("configuring IPAM", "err", err)
		return
	}
	a.mu.Lock()
	a.store, a.alloc = store, alloc
	a.mu.Unlock()
	a.storeUp <- struct{}{}

	a.goRun(func() { a.registerLoop(ctx, store) })
	a.goRun(func() { a.healthLoop(ctx, store) })
	a.goRun(func() { a.reclaimLoop(ctx, store, alloc) })
	a.watchNetworks(ctx, store)
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
		reg, err := store.Register(ctx, nodesPrefix+a.cfg.NodeName, a.nodeValue(), nodeTTL)
		if err == nil {
			a.log.Info("registered in the cluster store", "key", nodesPrefix+a.cfg.NodeName)
			<-ctx.Done()
			// Leave the key to expire: a restarting agent is still a node.
			_ = reg
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
// is down and work again as soon as it is back.
func (a *Agent) healthLoop(ctx context.Context, store kvstore.Store) {
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		pingCtx, cancel := context.WithTimeout(ctx, healthInterval)
		err := kvstore.Ping(pingCtx, store)
		cancel()
		if ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		switch {
		case err == nil && a.storeErr != nil:
			a.log.Info("cluster store reachable again")
			a.storeErr = nil
		case err != nil && a.storeErr == nil:
			a.log.Warn("cluster store unreachable", "err", err)
			a.storeErr = errors.New(a.cfg.StoreURL + " does not answer")
			if errors.Is(err, kvstore.ErrPermission) {
				a.storeErr = errors.New(a.cfg.StoreURL + " refused the credentials")
			}
		}
		a.mu.Unlock()
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// watchNetworks mirrors networks/ into a.networks: a listing, then a watch
// from the listing's version (the watch itself survives outages).
func (a *Agent) watchNetworks(ctx context.Context, store kvstore.Store) {
	b := backoff.New(500*time.Millisecond, 10*time.Second)
	var (
		kvs []kvstore.KVPair
		ver uint64
		err error
	)
	for {
		kvs, ver, err = store.List(ctx, networksPrefix)
		if err == nil {
			break
		}
		a.noteStoreErr(err)
		if !b.Wait(ctx) {
			return
		}
	}
	a.replaceGlobalNetworks(kvs)
	events, err := store.Watch(ctx, networksPrefix, ver)
	if err != nil {
		a.log.Error("watching networks", "err", err)
		return
	}
	for ev := range events {
		switch ev.Type {
		case kvstore.EventReset:
			a.replaceGlobalNetworks(ev.Snapshot)
		case kvstore.EventPut:
			if n, ok := a.parseNetwork(ev.Key, ev.Value); ok {
				a.mu.Lock()
				a.networks[n.ID] = n
				a.mu.Unlock()
				a.networksChanged()
			}
		case kvstore.EventDelete:
			id := strings.TrimPrefix(ev.Key, networksPrefix)
			a.mu.Lock()
			n, ok := a.networks[id]
			if ok && n.global() {
				delete(a.networks, id)
			}
			a.mu.Unlock()
			if ok {
				a.networksChanged()
			}
		}
	}
}

func (a *Agent) parseNetwork(key string, value []byte) (*networkRecord, bool) {
	var n networkRecord
	if err := json.Unmarshal(value, &n); err != nil || n.ID != strings.TrimPrefix(key, networksPrefix) {
		a.log.Warn("ignoring a malformed network record", "key", key)
		return nil, false
	}
	n.Scope = "global"
	return &n, true
}

// replaceGlobalNetworks makes the mirror hold exactly the listed global
// networks; local ones stay.
func (a *Agent) replaceGlobalNetworks(kvs []kvstore.KVPair) {
	fresh := map[string]*networkRecord{}
	for _, kv := range kvs {
		if n, ok := a.parseNetwork(kv.Key, kv.Value); ok {
			fresh[n.ID] = n
		}
	}
	a.mu.Lock()
	changed := false
	for id, n := range a.networks {
		if n.global() && !reflect.DeepEqual(fresh[id], n) {
			delete(a.networks, id)
			changed = true
		}
	}
	for id, n := range fresh {
		if a.networks[id] == nil {
			a.networks[id] = n
			changed = true
		}
	}
	a.mu.Unlock()
	if changed {
		a.networksChanged()
	}
}

// refreshNetworks re-reads networks/ when the store answers, so that a
// network created on another host a moment ago is known here at once,
// before the watch delivers it.
func (a *Agent) refreshNetworks(ctx context.Context) {
	store, ok := a.storeReady()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	kvs, _, err := store.List(ctx, networksPrefix)
	if err != nil {
		a.noteStoreErr(err)
		return
	}
	a.replaceGlobalNetworks(kvs)
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
// subscribe to new networks' endpoints, reprogram the datapath.
func (a *Agent) networksChanged() {
	a.saveState()
	a.syncSubscriptions()
	a.kickDatapath()
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

// reclaimLoop deletes the address leases of nodes gone for good: absent
// from nodes/ and from gossip for reclaimGrace as observed by this agent.
func (a *Agent) reclaimLoop(ctx context.Context, store kvstore.Store, alloc *ipam.Allocator) {
	missingSince := map[string]time.Time{}
	t := time.NewTicker(reclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		if err := a.sweepOwnLeases(ctx, store); err != nil {
			a.noteStoreErr(err)
			a.log.Warn("releasing this node's orphaned leases", "err", err)
		}
		if err := a.reclaimOnce(ctx, store, alloc, missingSince); err != nil {
			a.noteStoreErr(err)
			a.log.Warn("reclaiming leases of departed nodes", "err", err)
		}
	}
}

// sweepOwnLeases releases address leases that name this node but no
// endpoint it has: left behind when a release failed (store down during
// sandbox rm -f) or the agent died halfway through an operation. It holds
// opMu, so no operation is between leasing and recording.
func (a *Agent) sweepOwnLeases(ctx context.Context, store kvstore.Store) error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	kvs, _, err := store.List(ctx, "ips/")
	if err != nil {
		return err
	}
	a.mu.Lock()
	mine := map[string]bool{}
	for _, s := range a.sandboxes {
		for _, e := range s.Endpoints {
			mine[e.ID] = true
		}
	}
	a.mu.Unlock()
	var errs []error
	for _, kv := range kvs {
		var o ipam.Owner
		if json.Unmarshal(kv.Value, &o) != nil || o.Node != a.cfg.NodeName || mine[o.EndpointID] {
			continue
		}
		err := store.CompareAndDelete(ctx, kv.Key, kv.Version)
		if err == nil {
			a.log.Info("released an orphaned address lease", "key", kv.Key)
		} else if !errors.Is(err, kvstore.ErrKeyModified) && !errors.Is(err, kvstore.ErrKeyNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Agent) reclaimOnce(ctx context.Context, store kvstore.Store, alloc *ipam.Allocator, missingSince map[string]time.Time) error {
	nodes, ver, err := registeredNodes(ctx, store)
	if err != nil {
		return err
	}
	kvs, _, err := store.List(ctx, "ips/")
	if err != nil {
		return err
	}
	present := map[string]bool{a.cfg.NodeName: true}
	for n := range nodes {
		present[n] = true
		delete(missingSince, n)
	}
	for _, m := range a.gossip.Members() {
		present[m.Name] = true
		delete(missingSince, m.Name)
	}
	// Owners absent for less than the grace period count as live.
	live := map[string]bool{}
	gone := 0
	now := time.Now()
	for _, kv := range kvs {
		var o ipam.Owner
		if json.Unmarshal(kv.Value, &o) != nil || o.Node == "" || present[o.Node] || live[o.Node] {
			continue
		}
		since, seen := missingSince[o.Node]
		if !seen {
			missingSince[o.Node], since = now, now
		}
		if now.Sub(since) < reclaimGrace {
			live[o.Node] = true
		} else {
			gone++
		}
	}
	if gone == 0 {
		return nil
	}
	names := slices.Collect(maps.Keys(present))
	names = append(names, slices.Collect(maps.Keys(live))...)
	reclaimed, err := alloc.Reclaim(ctx, names, ver)
	for _, l := range reclaimed {
		a.log.Info("reclaimed the address lease of a departed node", "network", l.NetworkID, "addr", l.Addr, "node", l.Owner.Node)
	}
	if err != nil {
		return fmt.Errorf("reclaiming: %w", err)
	}
	return nil
}
