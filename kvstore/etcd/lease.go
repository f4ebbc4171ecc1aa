package etcd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
)

// registration is a key bound to an etcd lease. Its goroutine keeps the
// lease alive; when the lease is lost (an outage longer than the TTL) it
// grants a new one and writes the key again.
type registration struct {
	s   *Store
	key string
	ttl int64 // seconds

	mu    sync.Mutex // guards value and lease
	value []byte
	lease clientv3.LeaseID

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Register implements kvstore.Store.
func (s *Store) Register(ctx context.Context, key string, value []byte, ttl time.Duration) (kvstore.Registration, error) {
	r := &registration{s: s, key: key, value: value, ttl: int64(math.Ceil(ttl.Seconds())), done: make(chan struct{})}
	if r.ttl < 1 {
		r.ttl = 1
	}
	if err := r.establish(ctx); err != nil {
		return nil, err
	}
	var rctx context.Context
	rctx, r.cancel = context.WithCancel(s.bg)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		r.keepAlive(rctx)
	}()
	return r, nil
}

// establish grants a lease and writes the key on it.
func (r *registration) establish(ctx context.Context) error {
	cctx, cancel := r.s.call(ctx)
	defer cancel()
	grant, err := r.s.cli.Grant(cctx, r.ttl)
	if err != nil {
		return fmt.Errorf("granting lease for %s: %w", r.key, r.s.mapErr(err))
	}
	r.mu.Lock()
	value := r.value
	r.lease = grant.ID
	r.mu.Unlock()
	if _, err := r.s.cli.Put(cctx, r.key, string(value), clientv3.WithLease(grant.ID)); err != nil {
		return fmt.Errorf("writing %s: %w", r.key, r.s.mapErr(err))
	}
	return nil
}

func (r *registration) keepAlive(ctx context.Context) {
	retry := backoff.New(100*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		r.mu.Lock()
		lease := r.lease
		r.mu.Unlock()
		// The channel closes when the lease expires (no successful
		// refresh within the TTL) or ctx ends.
		ch, err := r.s.cli.KeepAlive(ctx, lease)
		if err == nil {
			for range ch {
				retry.Reset()
			}
		}
		if ctx.Err() != nil {
			return
		}
		for ctx.Err() == nil {
			if r.establish(ctx) == nil {
				break
			}
			retry.Wait(ctx)
		}
	}
}

func (r *registration) Key() string { return r.key }

// Update implements kvstore.Registration.
func (r *registration) Update(ctx context.Context, value []byte) error {
	r.mu.Lock()
	r.value = value
	lease := r.lease
	r.mu.Unlock()
	cctx, cancel := r.s.call(ctx)
	defer cancel()
	_, err := r.s.cli.Put(cctx, r.key, string(value), clientv3.WithLease(lease))
	return r.s.mapErr(err)
}

// Revoke implements kvstore.Registration. It stops the keep-alive first;
// if the store is unreachable it returns the error and may be called again
// (the key expires with its TTL meanwhile).
func (r *registration) Revoke(ctx context.Context) error {
	r.once.Do(func() {
		r.cancel()
		<-r.done
	})
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	cctx, cancel := r.s.call(ctx)
	defer cancel()
	if _, err := r.s.cli.Revoke(cctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoking lease of %s: %w", r.key, r.s.mapErr(err))
	}
	return nil
}
