// Package netstore keeps the records of global networks in the cluster
// store, beside the leases agent/ipam owns (docs/design.md §4):
//
//	networks/<id>   the network's configuration (driver.Network as JSON)
//	names/<name>    its id, so that names are unique cluster-wide
//
// A network is created in one transaction with its VNI and subnet leases
// (ipam.LeaseNetwork), so it exists with them or not at all.
//
// Removal and address leases never interleave. An endpoint's address is
// leased fenced by the record's version: the create of ips/<id>/<ip> and a
// check that networks/<id> is still at the version the caller read go in
// one transaction. Remove first lists the leases (and refuses while there
// are any), then moves the record to a new version marked Removing, lists
// again, and only then deletes the record, its name and its leases in one
// transaction conditional on that version. A lease that read the record
// before the mark fails its fence; one that reads it after sees Removing
// and refuses; one that committed before the mark is in the second
// listing, and the removal gives up and unmarks the record. So afterwards
// either the network exists with every lease that succeeded, or nothing of
// it does.
package netstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/internal/names"
	"github.com/meshnet/meshnet/kvstore"
)

// Store keys.
const (
	NetworksPrefix = "networks/"
	NamesPrefix    = "names/"
)

// Sentinel errors.
var (
	// ErrNameTaken: another network has the name.
	ErrNameTaken = errors.New("network name taken")
	// ErrNotFound: the network has no record (it was removed).
	ErrNotFound = errors.New("network not found")
	// ErrRemoving: the network is being removed; no new endpoint may join.
	ErrRemoving = errors.New("network is being removed")
	// ErrInUse: the network has address leases, so it cannot be removed;
	// the error is an *InUseError listing them.
	ErrInUse = errors.New("network has endpoints")
)

// netError is an error whose message is one sentence and which unwraps to
// a sentinel.
type netError struct {
	msg      string
	sentinel error
}

func (e *netError) Error() string { return e.msg }
func (e *netError) Unwrap() error { return e.sentinel }

func failf(sentinel error, format string, args ...any) error {
	return &netError{msg: fmt.Sprintf(format, args...), sentinel: sentinel}
}

// InUseError refuses a removal while addresses are leased.
type InUseError struct {
	Network string
	Leases  []ipam.AddressLease
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("network %s has %d address leases", e.Network, len(e.Leases))
}
func (e *InUseError) Unwrap() error { return ErrInUse }

// Record is a network with the store version of its record.
type Record struct {
	Network *driver.Network
	Version uint64
	// Malformed: the store holds a record under this network's key
	// (Network.ID, nothing else set) that fails the checks. A mirror keeps
	// what it had for it, rather than take the network for removed.
	Malformed bool
}

// Store reads and writes network records. It is safe for concurrent use.
type Store struct {
	kv    kvstore.Store
	alloc *ipam.Allocator
	log   *slog.Logger
}

// New returns a Store over kv (rooted at the cluster prefix), leasing
// through alloc (over the same store).
func New(kv kvstore.Store, alloc *ipam.Allocator, log *slog.Logger) *Store {
	return &Store{kv: kv, alloc: alloc, log: log}
}

// Alloc is the allocator the store leases through.
func (s *Store) Alloc() *ipam.Allocator { return s.alloc }

func recordKey(id string) string { return NetworksPrefix + id }

// Create leases the network's VNI (if vni) and subnets and writes its record and
// name in one transaction; on success n holds the leased VNI and subnets.
// A name in use is ErrNameTaken. A store failure is returned wrapping
// kvstore.ErrUnavailable, unless a look afterwards finds the record: then
// the transaction did commit, and Create succeeded.
func (s *Store) Create(ctx context.Context, n *driver.Network, vni bool) error {
	n.Scope = driver.ScopeGlobal
	_, err := s.alloc.LeaseNetwork(ctx, ipam.NetworkRequest{ID: n.ID, VNI: n.VNI, Subnets: n.Subnets, IPv6: n.IPv6, NoVNI: !vni},
		func(l ipam.NetworkLease) ([]kvstore.Op, error) {
			n.VNI, n.Subnets = l.VNI, l.Subnets
			b, err := json.Marshal(n)
			if err != nil {
				return nil, err
			}
			return []kvstore.Op{
				{Kind: kvstore.OpCreate, Key: NamesPrefix + n.Name, Value: []byte(n.ID)},
				{Kind: kvstore.OpCreate, Key: recordKey(n.ID), Value: b},
			}, nil
		})
	var te *kvstore.TxnError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te) && te.Key == NamesPrefix+n.Name:
		return failf(ErrNameTaken, "network with name %s already exists", n.Name)
	case errors.Is(err, kvstore.ErrUnavailable):
		checkCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, gerr := s.kv.Get(checkCtx, recordKey(n.ID)); gerr == nil {
			return nil
		}
	}
	return err
}

// Get returns the network's record, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Record, error) {
	kv, err := s.kv.Get(ctx, recordKey(id))
	if errors.Is(err, kvstore.ErrKeyNotFound) {
		return Record{}, failf(ErrNotFound, "network %s not found", id)
	}
	if err != nil {
		return Record{}, err
	}
	n, err := parse(kv.Key, kv.Value)
	if err != nil {
		return Record{}, err
	}
	return Record{Network: n, Version: kv.Version}, nil
}

// List returns every network's record and the store version from which
// Watch continues; those that fail the checks are marked Malformed.
func (s *Store) List(ctx context.Context) ([]Record, uint64, error) {
	kvs, ver, err := s.kv.List(ctx, NetworksPrefix)
	if err != nil {
		return nil, 0, err
	}
	return s.parseAll(kvs), ver, nil
}

// Event is one change of the records.
type Event struct {
	// Type is kvstore.EventPut (Record holds the network), EventDelete
	// (ID) or EventReset (Snapshot holds every record).
	Type     kvstore.EventType
	ID       string
	Record   Record
	Snapshot []Record
}

// Watch streams the changes after version until ctx ends (see
// kvstore.Store.Watch); malformed records are logged and left out.
func (s *Store) Watch(ctx context.Context, version uint64) (<-chan Event, error) {
	raw, err := s.kv.Watch(ctx, NetworksPrefix, version)
	if err != nil {
		return nil, err
	}
	out := make(chan Event)
	go func() {
		defer close(out)
		for ev := range raw {
			e := Event{Type: ev.Type, ID: strings.TrimPrefix(ev.Key, NetworksPrefix)}
			switch ev.Type {
			case kvstore.EventReset:
				e.Snapshot = s.parseAll(ev.Snapshot)
			case kvstore.EventPut:
				n, err := parse(ev.Key, ev.Value)
				if err != nil {
					s.log.Warn("ignoring a malformed network record", "key", ev.Key, "err", err)
					continue
				}
				e.Record = Record{Network: n, Version: ev.Version}
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (s *Store) parseAll(kvs []kvstore.KVPair) []Record {
	out := make([]Record, 0, len(kvs))
	for _, kv := range kvs {
		n, err := parse(kv.Key, kv.Value)
		if err != nil {
			s.log.Warn("ignoring a malformed network record", "key", kv.Key, "err", err)
			out = append(out, Record{Network: &driver.Network{ID: strings.TrimPrefix(kv.Key, NetworksPrefix)}, Version: kv.Version, Malformed: true})
			continue
		}
		out = append(out, Record{Network: n, Version: kv.Version})
	}
	return out
}

func parse(key string, value []byte) (*driver.Network, error) {
	var n driver.Network
	if err := json.Unmarshal(value, &n); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", key, err)
	}
	if n.ID != strings.TrimPrefix(key, NetworksPrefix) {
		return nil, fmt.Errorf("record %s holds network id %q", key, n.ID)
	}
	if err := checkRecord(&n); err != nil {
		return nil, fmt.Errorf("record %s: %w", key, err)
	}
	n.Scope = driver.ScopeGlobal
	return &n, nil
}

// minPrefixBits bounds how wide a network's subnet may be: a record with
// a /0 or /1 would put a route to the whole address space on a bridge and
// masquerade it.
var minPrefixBits = map[bool]int{true: 8, false: 32} // by IPv4

// checkRecord checks a record read from the store as strictly as a
// user's request was checked when it was made: anyone who can write the
// store could otherwise program this host's kernel with it.
func checkRecord(n *driver.Network) error {
	switch {
	case !names.Valid(n.Name, 64):
		return fmt.Errorf("invalid network name %q", n.Name)
	case n.VNI > ipam.DefaultVNIMax:
		return fmt.Errorf("VNI %d is out of range", n.VNI)
	case n.MTU != 0 && (n.MTU < 576 || n.MTU > 65535):
		return fmt.Errorf("MTU %d is out of range", n.MTU)
	case len(n.Subnets) > 4:
		return fmt.Errorf("%d subnets: a network has at most one per family (and a few configured)", len(n.Subnets))
	}
	for _, c := range n.Subnets {
		norm, err := c.Normalize()
		if err != nil {
			return err
		}
		if norm.Subnet != c.Subnet || !c.Gateway.IsValid() || norm.Gateway != c.Gateway {
			return fmt.Errorf("subnet %s with gateway %s is not as the agent writes it", c.Subnet, c.Gateway)
		}
		if c.Subnet.Bits() < minPrefixBits[c.Subnet.Addr().Is4()] {
			return fmt.Errorf("subnet %s is wider than /%d", c.Subnet, minPrefixBits[c.Subnet.Addr().Is4()])
		}
	}
	return nil
}

// fenceAttempts bounds how often LeaseAddress re-reads a record that
// moved under it (another host's removal that gave up, say).
const fenceAttempts = 10

// LeaseAddress leases an address of a network for an endpoint, fenced by
// the network's record (see the package comment). rec is the caller's
// view of the record; a Version of 0 reads it first. A network being
// removed is ErrRemoving, one gone is ErrNotFound.
func (s *Store) LeaseAddress(ctx context.Context, rec Record, req ipam.AddressRequest) (netip.Prefix, error) {
	id := rec.Network.ID
	for range fenceAttempts {
		if rec.Version == 0 || rec.Network.Removing {
			fresh, err := s.Get(ctx, id)
			if errors.Is(err, ErrNotFound) {
				return netip.Prefix{}, failf(ErrNotFound, "network %s was removed", rec.Network.Name)
			}
			if err != nil {
				return netip.Prefix{}, err
			}
			rec = fresh
		}
		if rec.Network.Removing {
			return netip.Prefix{}, failf(ErrRemoving, "network %s is being removed", rec.Network.Name)
		}
		req.Fence = &ipam.Fence{Key: recordKey(id), Version: rec.Version}
		p, err := s.alloc.LeaseAddress(ctx, id, rec.Network.Subnets, req)
		if !errors.Is(err, ipam.ErrFenceMoved) {
			return p, err
		}
		rec.Version = 0 // moved: read it again
	}
	return netip.Prefix{}, fmt.Errorf("network %s keeps changing while an address is leased; try again: %w", rec.Network.Name, ipam.ErrContention)
}

// Remove deletes the network's record, name and leases in one
// transaction, unless an address is leased in it (*InUseError). Removing
// a network that is gone already is not an error.
func (s *Store) Remove(ctx context.Context, id string) error {
	rec, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.checkUnused(ctx, id); err != nil {
		if rec.Network.Removing { // left by a removal that could not unmark it
			unmarked := rec.Network.Clone()
			unmarked.Removing = false
			s.swap(ctx, id, unmarked, rec.Version)
		}
		return err
	}
	marked := rec.Network.Clone()
	marked.Removing = true
	version, err := s.swap(ctx, id, marked, rec.Version)
	if err != nil {
		return err
	}
	if err := s.checkUnused(ctx, id); err != nil {
		// A lease committed before the mark: the network stays.
		if _, uerr := s.swap(ctx, id, rec.Network, version); uerr != nil && !errors.Is(uerr, ErrNotFound) {
			s.log.Warn("could not clear the removing mark of a network still in use; the next removal will", "network", id, "err", uerr)
		}
		return err
	}
	ops := []kvstore.Op{{Kind: kvstore.OpCompareDelete, Key: recordKey(id), Version: version}}
	if nk, err := s.kv.Get(ctx, NamesPrefix+rec.Network.Name); err == nil && string(nk.Value) == id {
		ops = append(ops, kvstore.Op{Kind: kvstore.OpCompareDelete, Key: nk.Key, Version: nk.Version})
	}
	release, err := s.alloc.ReleaseOps(ctx, rec.Network.Lease())
	if err != nil {
		return err
	}
	if err := s.kv.Txn(ctx, append(ops, release...)...); err != nil {
		if errors.Is(err, kvstore.ErrKeyModified) || errors.Is(err, kvstore.ErrKeyNotFound) {
			return fmt.Errorf("network %s changed while it was being removed; try again: %w", rec.Network.Name, ipam.ErrContention)
		}
		return err
	}
	return nil
}

// checkUnused returns an *InUseError if an address of the network is
// leased.
func (s *Store) checkUnused(ctx context.Context, id string) error {
	leases, err := s.alloc.Addresses(ctx, id)
	if err != nil {
		return err
	}
	if len(leases) > 0 {
		return &InUseError{Network: id, Leases: leases}
	}
	return nil
}

// swap writes n as the record at version and returns the new version.
func (s *Store) swap(ctx context.Context, id string, n *driver.Network, version uint64) (uint64, error) {
	b, err := json.Marshal(n)
	if err != nil {
		return 0, err
	}
	v, err := s.kv.CompareAndSwap(ctx, recordKey(id), b, version)
	switch {
	case errors.Is(err, kvstore.ErrKeyNotFound):
		return 0, failf(ErrNotFound, "network %s not found", n.Name)
	case errors.Is(err, kvstore.ErrKeyModified):
		return 0, fmt.Errorf("network %s changed while it was being removed; try again: %w", n.Name, ipam.ErrContention)
	}
	return v, err
}
