package ipam

// Freeing the address leases of holders that are gone.
//
// Two cases, both judged by the lease's Owner.Node:
//
//   - A node's own orphans (SweepOrphans): leases that name the node but no
//     endpoint it still has, left behind when a release failed (store down
//     during a forced removal) or the agent died halfway. Only the node
//     itself can tell, so it sweeps its own.
//   - Leases of departed nodes (Reclaimer): a node absent from the
//     cluster holds nothing any more. Reclaimer waits a grace period first,
//     so a node that restarts or drops out of gossip for a moment keeps its
//     addresses.
//
// Every deletion is a compare-and-delete at the version listed, so a lease
// released and taken again meanwhile survives.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshnet/meshnet/kvstore"
)

// listAllLeases lists every ips/ key once.
func (a *Allocator) listAllLeases(ctx context.Context) ([]kvstore.KVPair, error) {
	kvs, _, err := a.store.List(ctx, ipPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing address leases: %w", err)
	}
	return kvs, nil
}

// deleteLeases deletes the listed leases for which drop is true, each by
// compare-and-delete at its listed version, and returns what it deleted.
// A lease that changed or went meanwhile is no error; other errors are
// joined.
func (a *Allocator) deleteLeases(ctx context.Context, kvs []kvstore.KVPair, drop func(AddressLease) bool) ([]AddressLease, error) {
	var (
		deleted []AddressLease
		errs    []error
	)
	for _, kv := range kvs {
		l, ok := parseAddressLease(kv)
		if !ok || !drop(l) {
			continue
		}
		err := a.store.CompareAndDelete(ctx, kv.Key, kv.Version)
		switch {
		case err == nil:
			deleted = append(deleted, l)
		case errors.Is(err, kvstore.ErrKeyNotFound), errors.Is(err, kvstore.ErrKeyModified):
		default:
			errs = append(errs, fmt.Errorf("deleting lease %s: %w", kv.Key, err))
		}
	}
	return deleted, errors.Join(errs...)
}

// SweepOrphans deletes the address leases, in every network, that name
// node as their owner and for which keep returns false (no endpoint of the
// node holds them any more), and returns what it deleted. It lists the
// leases once; the caller must make sure that no lease of node is taken
// between that listing and keep's answer without keep knowing of it (the
// agent holds its operation lock).
func (a *Allocator) SweepOrphans(ctx context.Context, node string, keep func(AddressLease) bool) ([]AddressLease, error) {
	if node == "" {
		return nil, failf(ErrInvalid, "sweeping orphaned leases needs a node name")
	}
	kvs, err := a.listAllLeases(ctx)
	if err != nil {
		return nil, err
	}
	return a.deleteLeases(ctx, kvs, func(l AddressLease) bool { return l.Owner.Node == node && !keep(l) })
}

// reclaimListed deletes the listed leases of the nodes gone says are
// gone, except those written after asOf (0: no bound).
func (r *Reclaimer) reclaimListed(ctx context.Context, kvs []kvstore.KVPair, gone func(node string) bool, asOf uint64) ([]AddressLease, error) {
	reclaimed, err := r.alloc.deleteLeases(ctx, kvs, func(l AddressLease) bool {
		return l.Owner.Node != "" && gone(l.Owner.Node) && (asOf == 0 || l.Version <= asOf)
	})
	if err != nil {
		return reclaimed, fmt.Errorf("reclaiming address leases: %w", err)
	}
	return reclaimed, nil
}

// nodeSet refuses an empty list of live nodes and returns it as a set.
func nodeSet(live []string) (map[string]bool, error) {
	if len(live) == 0 {
		return nil, failf(ErrInvalid, "refusing to reclaim with no live nodes: at least the caller's node is alive")
	}
	set := make(map[string]bool, len(live))
	for _, n := range live {
		set[n] = true
	}
	return set, nil
}

// Reclaimer reclaims the address leases of nodes that have been missing
// for at least a grace period, as observed by its caller over successive
// calls. It is not safe for concurrent use: one loop owns it and calls
// Reclaim periodically.
type Reclaimer struct {
	alloc *Allocator
	grace time.Duration
	now   func() time.Time
	// missingSince holds, for every lease owner seen missing, when it was
	// first seen missing; owners present again or holding no lease are
	// forgotten, so their grace period starts afresh.
	missingSince map[string]time.Time
}

// NewReclaimer returns a Reclaimer that reclaims the leases of a node once
// it has been missing for grace (0: at once).
func (a *Allocator) NewReclaimer(grace time.Duration) *Reclaimer {
	return &Reclaimer{alloc: a, grace: grace, now: time.Now, missingSince: map[string]time.Time{}}
}

// Reclaim lists the address leases once and notes every owner not in
// present as missing from now on (if it was not already); it forgets
// owners that are present again. It then deletes the leases of the owners
// missing for at least the grace period, and returns them, leaving alone leases
// written after asOf. A Reclaimer with no grace reclaims at once the
// leases of every node not present: deleted by compare-and-delete at the
// version read, so one re-leased meanwhile survives.
//
// present holds the nodes known alive now (registered under nodes/, or
// gossip members), including the caller's own node, so it is never empty;
// asOf is the store version of the nodes/ listing (0: no bound).
func (r *Reclaimer) Reclaim(ctx context.Context, present []string, asOf uint64) ([]AddressLease, error) {
	alive, err := nodeSet(present)
	if err != nil {
		return nil, err
	}
	kvs, err := r.alloc.listAllLeases(ctx)
	if err != nil {
		return nil, err
	}
	now := r.now()
	missing := map[string]bool{} // owners of listed leases that are not alive
	gone := map[string]bool{}
	for _, kv := range kvs {
		l, ok := parseAddressLease(kv)
		node := l.Owner.Node
		if !ok || node == "" || alive[node] || missing[node] {
			continue
		}
		missing[node] = true
		since, seen := r.missingSince[node]
		if !seen {
			r.missingSince[node], since = now, now
		}
		if now.Sub(since) >= r.grace {
			gone[node] = true
		}
	}
	for node := range r.missingSince {
		if !missing[node] {
			delete(r.missingSince, node)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	return r.reclaimListed(ctx, kvs, func(node string) bool { return gone[node] }, asOf)
}
