// Package ipam keeps meshnet's global leases in the cluster store, as
// docs/design.md §4 lays out. It owns three subtrees of the store and nothing
// else writes there:
//
//   - vni/<vni> = network id: VXLAN network identifiers;
//   - subnets/<cidr> = network or pool id, with the guard key
//     subnets-version: subnets of networks and of pools;
//   - ips/<network-or-pool-id>/<ip> = Owner (endpoint id, node): endpoint
//     addresses.
//
// It also owns the policy that frees what dead holders left behind:
// SweepOrphans (a node's own leases that no endpoint of it holds any more)
// and Reclaimer (the leases of nodes gone for longer than a grace period).
//
// Every lease is taken by an atomic store operation and never by a blind
// read-modify-write. Each allocation reads the current leases once, picks
// candidates locally, and writes with create-if-absent (plus, for subnets, a
// compare-and-swap of a guard key in the same transaction); when another
// writer wins, it re-reads and tries again. So many agents on many hosts can
// allocate at the same time and never hand out one thing twice.
//
// Subnets need more than create-if-absent: two networks may take different
// keys (subnets/10.0.0.0/16 and subnets/10.0.1.0/24) that overlap. See
// network.go for the guard key that serialises subnet leases.
//
// Network leases are taken together with the agent's own network record:
// LeaseNetwork accepts a function that returns the extra transaction ops
// (networks/<id>, names/<name>) and writes them in the same transaction as
// the VNI and subnet leases, so a network exists with its leases or not at
// all and there is nothing to roll back. An address lease may be fenced by
// the network record (AddressRequest.Fence): it commits only while the
// record is at the version the caller read, so removing a network (which
// first moves its record, then deletes its leases) never interleaves with
// a lease in it.
//
// Pools (RequestPool, RequestAddress, ReleasePool) are the same leases
// without a network record, for a Docker IPAM plugin: a pool id is used
// like a network id, in subnets/<cidr> and ips/<pool-id>/<ip>. Pools and
// networks therefore share the guard and the overlap check and never
// overlap each other; a pool id must not be the id of a network.
package ipam

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/meshnet/meshnet/kvstore"
)

// Sentinel errors; every error this package returns for bad input or a
// conflict wraps one of them, with a one-sentence message naming the
// offending value. Store failures pass through wrapped (kvstore.ErrUnavailable
// and friends).
var (
	// ErrInvalid: the request itself is wrong (bad CIDR, gateway outside
	// the subnet, ...). HTTP 400.
	ErrInvalid = errors.New("invalid address configuration")
	// ErrSubnetOverlap: a requested subnet overlaps one already leased.
	// HTTP 409.
	ErrSubnetOverlap = errors.New("subnet overlaps a leased subnet")
	// ErrAddressInUse: a requested address is leased, or reserved as the
	// gateway or an auxiliary address. HTTP 409.
	ErrAddressInUse = errors.New("address already in use")
	// ErrVNIInUse: a requested VNI is leased by another network. HTTP 409.
	ErrVNIInUse = errors.New("VNI already in use")
	// ErrPoolExhausted: no free VNI, subnet or address is left. HTTP 409.
	ErrPoolExhausted = errors.New("address pool exhausted")
	// ErrContention: the allocation lost to other writers too many times
	// in a row. Retrying later is safe. HTTP 503.
	ErrContention = errors.New("too many concurrent allocations")
	// ErrFenceMoved: the fence of an address lease (the network's record)
	// changed or disappeared, so nothing was leased; the network is being
	// changed or removed. HTTP 409.
	ErrFenceMoved = errors.New("network changed while an address was being leased")
)

// leaseError is an error whose message is a complete sentence and which
// unwraps to a sentinel, so callers can both show it and classify it.
type leaseError struct {
	msg      string
	sentinel error
}

func (e *leaseError) Error() string { return e.msg }
func (e *leaseError) Unwrap() error { return e.sentinel }

func failf(sentinel error, format string, args ...any) error {
	return &leaseError{msg: fmt.Sprintf(format, args...), sentinel: sentinel}
}

// VNI range defaults: below 4096 are VLAN-sized ids that users tend to pick
// by hand; 2^24-1 is the largest VXLAN id.
const (
	DefaultVNIMin uint32 = 4096
	DefaultVNIMax uint32 = 1<<24 - 1
)

// Config tunes an Allocator. The zero value means the defaults.
type Config struct {
	// VNIMin and VNIMax bound automatic VNIs (inclusive). Requested VNIs
	// may be any valid VXLAN id.
	VNIMin, VNIMax uint32
	// Pools are where automatic subnets come from, in order
	// (default-address-pools). Empty means DefaultGlobalPools.
	Pools []AddressPool
	// MaxAttempts bounds how often one allocation re-reads after losing a
	// race before it gives up with ErrContention. Every lost race means
	// another allocation won, so the cluster as a whole always progresses.
	MaxAttempts int
}

const defaultMaxAttempts = 1000

// Allocator takes and releases leases in one cluster store. It holds no
// state of its own between calls and is safe for concurrent use; any
// number of Allocators on any number of hosts may share a store.
type Allocator struct {
	store       kvstore.Store
	vniMin      uint32
	vniMax      uint32
	pools       []AddressPool
	maxAttempts int
	views       addrViews // per network, the leased addresses (see address.go)
}

// New returns an Allocator over store (already rooted at the cluster
// prefix), or ErrInvalid if cfg is inconsistent.
func New(store kvstore.Store, cfg Config) (*Allocator, error) {
	a := &Allocator{store: store, vniMin: cfg.VNIMin, vniMax: cfg.VNIMax,
		pools: cfg.Pools, maxAttempts: cfg.MaxAttempts}
	if a.vniMin == 0 && a.vniMax == 0 {
		a.vniMin, a.vniMax = DefaultVNIMin, DefaultVNIMax
	}
	if a.vniMin == 0 || a.vniMax > DefaultVNIMax || a.vniMin > a.vniMax {
		return nil, failf(ErrInvalid, "VNI range %d-%d is not within 1-%d", a.vniMin, a.vniMax, DefaultVNIMax)
	}
	if len(a.pools) == 0 {
		a.pools = DefaultGlobalPools()
	}
	for _, p := range a.pools {
		if err := p.Validate(); err != nil {
			return nil, err
		}
	}
	if a.maxAttempts <= 0 {
		a.maxAttempts = defaultMaxAttempts
	}
	return a, nil
}

// Store keys (relative to the cluster prefix).
const (
	vniPrefix    = "vni/"
	subnetPrefix = "subnets/"
	ipPrefix     = "ips/"
	// GuardKey is bumped by compare-and-swap in every transaction that
	// leases a subnet; see network.go.
	GuardKey = "subnets-version"
)

// VNIKey is the lease key of a VNI.
func VNIKey(vni uint32) string { return fmt.Sprintf("%s%d", vniPrefix, vni) }

// SubnetKey is the lease key of a subnet.
func SubnetKey(p netip.Prefix) string { return subnetPrefix + p.Masked().String() }

// IPKeyPrefix is the prefix under which a network's address leases live.
func IPKeyPrefix(networkID string) string { return ipPrefix + networkID + "/" }

// IPKey is the lease key of one address of a network.
func IPKey(networkID string, addr netip.Addr) string { return IPKeyPrefix(networkID) + addr.String() }

// retry runs attempt until it reports done, an error, or the attempt budget
// or ctx runs out. Between lost races it waits a short random time that
// grows with the number of losses, so racing writers spread out instead of
// colliding again in lockstep.
func (a *Allocator) retry(ctx context.Context, what string, attempt func(n int) (done bool, err error)) error {
	for n := 0; n < a.maxAttempts; n++ {
		done, err := attempt(n)
		if err != nil || done {
			return err
		}
		wait := time.Duration(rand.Int64N(int64(time.Millisecond) << min(n, 5)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(wait):
		}
	}
	return failf(ErrContention, "%s: lost to concurrent allocations %d times; try again", what, a.maxAttempts)
}

// conflictKey returns the key of the op that failed a transaction, or ""
// if err is not a failed condition.
func conflictKey(err error) string {
	var te *kvstore.TxnError
	if errors.As(err, &te) {
		return te.Key
	}
	return ""
}

// checkID refuses an id that is empty or would break the key layout
// (ips/<network-id>/<ip>): no '/' and no white space.
func checkID(what, id string) error {
	if id == "" || strings.ContainsAny(id, "/ \t\n") {
		return failf(ErrInvalid, "%s id %q is empty or contains '/' or white space", what, id)
	}
	return nil
}
