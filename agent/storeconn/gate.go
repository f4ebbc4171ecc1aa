package storeconn

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/meshnet/meshnet/kvstore"
)

// The store gate makes global operations fail fast when the store dies.
// The health loop probes the store every healthInterval and marks it down
// after healthFailures probes in a row went unanswered for healthTimeout;
// at that moment the gate cancels the store calls in flight (they fail
// with kvstore.ErrUnavailable, and their operations roll back with the
// usual 503) and, until the store is marked up again, fails new calls at
// once. A client's own call timeout (the store's timeout option, 5 s by
// default) thus no longer decides how long the first operation after an
// outage hangs: about healthInterval + 2 × healthTimeout, under a second.
const (
	healthInterval = 250 * time.Millisecond
	healthTimeout  = 350 * time.Millisecond
	healthFailures = 2
)

// gate is up (calls go through) or down (calls fail at once, those
// in flight are cancelled). The zero value is not usable: newGate.
type gate struct {
	mu     sync.Mutex
	up     context.Context // done while the store is down
	markDn context.CancelFunc
}

func newGate() *gate {
	g := &gate{}
	g.up, g.markDn = context.WithCancel(context.Background())
	return g
}

// markDown cancels the calls in flight and fails the next ones.
func (g *gate) markDown() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.markDn()
}

// markUp lets calls through again.
func (g *gate) markUp() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.up.Err() != nil {
		g.up, g.markDn = context.WithCancel(context.Background())
	}
}

// errGateDown is what a call fails with while the store is marked down.
var errGateDown = fmt.Errorf("%w: the cluster store does not answer", kvstore.ErrUnavailable)

// call runs fn with ctx, cancelled should the store be marked down
// meanwhile; a call cut short so, or made while the store is down, fails
// with errGateDown.
func (g *gate) call(ctx context.Context, fn func(context.Context) error) error {
	g.mu.Lock()
	up := g.up
	g.mu.Unlock()
	if up.Err() != nil {
		return errGateDown
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(up, cancel)
	defer stop()
	err := fn(ctx)
	if err != nil && up.Err() != nil {
		return errGateDown
	}
	return err
}

// gatedStore is a store whose reads and writes go through a gate. Watches
// and registrations are long-lived and keep their own retry loops.
type gatedStore struct {
	kvstore.Store
	gate *gate
}

func (s gatedStore) Get(ctx context.Context, key string) (kv kvstore.KVPair, err error) {
	err = s.gate.call(ctx, func(ctx context.Context) error { kv, err = s.Store.Get(ctx, key); return err })
	return kv, err
}

func (s gatedStore) Put(ctx context.Context, key string, value []byte) (v uint64, err error) {
	err = s.gate.call(ctx, func(ctx context.Context) error { v, err = s.Store.Put(ctx, key, value); return err })
	return v, err
}

func (s gatedStore) Create(ctx context.Context, key string, value []byte) (v uint64, err error) {
	err = s.gate.call(ctx, func(ctx context.Context) error { v, err = s.Store.Create(ctx, key, value); return err })
	return v, err
}

func (s gatedStore) CompareAndSwap(ctx context.Context, key string, value []byte, version uint64) (v uint64, err error) {
	err = s.gate.call(ctx, func(ctx context.Context) error {
		v, err = s.Store.CompareAndSwap(ctx, key, value, version)
		return err
	})
	return v, err
}

func (s gatedStore) Delete(ctx context.Context, key string) error {
	return s.gate.call(ctx, func(ctx context.Context) error { return s.Store.Delete(ctx, key) })
}

func (s gatedStore) CompareAndDelete(ctx context.Context, key string, version uint64) error {
	return s.gate.call(ctx, func(ctx context.Context) error { return s.Store.CompareAndDelete(ctx, key, version) })
}

func (s gatedStore) List(ctx context.Context, prefix string) (kvs []kvstore.KVPair, v uint64, err error) {
	err = s.gate.call(ctx, func(ctx context.Context) error { kvs, v, err = s.Store.List(ctx, prefix); return err })
	return kvs, v, err
}

func (s gatedStore) Txn(ctx context.Context, ops ...kvstore.Op) error {
	return s.gate.call(ctx, func(ctx context.Context) error { return s.Store.Txn(ctx, ops...) })
}
