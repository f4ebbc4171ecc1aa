package storeconn

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
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

// NodeInfo is the value of nodes/<node>.
type NodeInfo struct {
	Address    string `json:"address"`
	VTEP       string `json:"vtep"`
	GossipPort int    `json:"gossip_port"`
	Version    string `json:"version"`
}

// registerLoop registers nodes/<node>; the registration keeps itself alive
// and re-creates the key after an outage.
func (c *Conn) registerLoop(ctx context.Context, store kvstore.Store) {
	value, _ := json.Marshal(NodeInfo{Address: c.cfg.VTEP.String(), VTEP: c.cfg.VTEP.String(),
		GossipPort: c.cfg.GossipPort, Version: c.cfg.Version})
	b := backoff.New(500*time.Millisecond, 10*time.Second)
	for {
		_, err := store.Register(ctx, nodesPrefix+c.cfg.NodeName, value, nodeTTL)
		if err == nil {
			c.log.Info("registered in the cluster store", "key", nodesPrefix+c.cfg.NodeName)
			<-ctx.Done()
			// Leave the key to expire: a restarting agent is still a node.
			return
		}
		c.NoteErr(err)
		c.log.Warn("registering the node", "err", err)
		if !b.Wait(ctx) {
			return
		}
	}
}

// healthLoop pings the store so that global operations fail fast while it
// is down (see gate) and work again as soon as it is back.
func (c *Conn) healthLoop(ctx context.Context, store kvstore.Store) {
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
		c.mu.Lock()
		switch {
		case err == nil && c.err != nil:
			c.log.Info("cluster store reachable again")
			c.answeredLocked()
		case err == nil:
			c.answeredLocked()
		case c.err == nil && (failed >= healthFailures || !errors.Is(err, kvstore.ErrUnavailable)):
			c.log.Warn("cluster store unreachable", "err", err)
			c.err = errors.New(c.cfg.URL + " does not answer")
			if errors.Is(err, kvstore.ErrPermission) {
				c.err = errors.New(c.cfg.URL + " refused the credentials")
			}
			c.gate.markDown()
		}
		c.mu.Unlock()
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

// watchNetworks mirrors networks/ into mirror: a listing, then a watch
// from the listing's version (the watch itself survives outages).
func (c *Conn) watchNetworks(ctx context.Context, nets *netstore.Store, mirror Mirror) {
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
		c.NoteErr(err)
		if !b.Wait(ctx) {
			return
		}
	}
	mirror.ReplaceGlobal(recs)
	events, err := nets.Watch(ctx, ver)
	if err != nil {
		c.log.Error("watching networks", "err", err)
		return
	}
	for ev := range events {
		switch ev.Type {
		case kvstore.EventReset:
			mirror.ReplaceGlobal(ev.Snapshot)
		case kvstore.EventPut:
			mirror.PutGlobal(ev.Record)
		case kvstore.EventDelete:
			mirror.DeleteGlobal(ev.ID)
		}
	}
}

// RegisteredNodes lists nodes/ when the store answers: the nodes by name,
// with the store version of the listing.
func (c *Conn) RegisteredNodes(ctx context.Context) (map[string]NodeInfo, uint64, error) {
	store, ok := c.Ready()
	if !ok {
		_, err := c.NetStoreNow()
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nodes, ver, err := registeredNodes(ctx, store)
	if err != nil {
		c.NoteErr(err)
	}
	return nodes, ver, err
}

// Seeds returns the gossip addresses of the registered nodes but self;
// ok is false when the store cannot tell now.
func (c *Conn) Seeds(ctx context.Context, self string) (addrs []string, ok bool) {
	nodes, _, err := c.RegisteredNodes(ctx)
	if err != nil {
		return nil, false
	}
	for name, ni := range nodes {
		if addr, err := netip.ParseAddr(ni.Address); err == nil && name != self && ni.GossipPort > 0 {
			addrs = append(addrs, net.JoinHostPort(addr.String(), strconv.Itoa(ni.GossipPort)))
		}
	}
	return addrs, true
}

func registeredNodes(ctx context.Context, store kvstore.Store) (map[string]NodeInfo, uint64, error) {
	kvs, ver, err := store.List(ctx, nodesPrefix)
	if err != nil {
		return nil, 0, err
	}
	nodes := make(map[string]NodeInfo, len(kvs))
	for _, kv := range kvs {
		var ni NodeInfo
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
func (c *Conn) leaseLoop(ctx context.Context, store kvstore.Store, alloc *ipam.Allocator, holder Holder, present func() []string) {
	reclaimer := alloc.NewReclaimer(c.cfg.ReclaimAfter)
	t := time.NewTicker(min(reclaimInterval, c.cfg.ReclaimAfter/2))
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		err := holder.Holding(func(holds func(ipam.AddressLease) bool) error {
			swept, err := alloc.SweepOrphans(ctx, c.cfg.NodeName, holds)
			for _, l := range swept {
				c.log.Info("released an orphaned address lease", "network", l.NetworkID, "addr", l.Addr)
			}
			return err
		})
		if err != nil {
			c.NoteErr(err)
			c.log.Warn("releasing this node's orphaned leases", "err", err)
		}
		nodes, ver, err := registeredNodes(ctx, store)
		if err == nil {
			alive := append(slices.Collect(maps.Keys(nodes)), present()...)
			var reclaimed []ipam.AddressLease
			reclaimed, err = reclaimer.Reclaim(ctx, append(alive, c.cfg.NodeName), ver)
			for _, l := range reclaimed {
				c.log.Info("reclaimed the address lease of a departed node", "network", l.NetworkID, "addr", l.Addr, "node", l.Owner.Node)
			}
		}
		if err != nil {
			c.NoteErr(err)
			c.log.Warn("reclaiming leases of departed nodes", "err", err)
		}
	}
}
