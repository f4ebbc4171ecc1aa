package kvstore

import (
	"context"
	"errors"
	"strings"
	"time"
)

// WithPrefix returns a Store that keeps every key of s under prefix: callers
// use relative keys ("networks/ID"), the backend sees absolute ones
// ("meshnet/v1/networks/ID"). This is the only place that knows the root
// prefix; backends never do.
func WithPrefix(s Store, prefix string) Store {
	if prefix == "" {
		return s
	}
	return &prefixed{Store: s, prefix: prefix}
}

type prefixed struct {
	Store
	prefix string
}

func (p *prefixed) abs(key string) string { return p.prefix + key }
func (p *prefixed) rel(key string) string { return strings.TrimPrefix(key, p.prefix) }

func (p *prefixed) relPairs(kvs []KVPair) []KVPair {
	for i := range kvs {
		kvs[i].Key = p.rel(kvs[i].Key)
	}
	return kvs
}

func (p *prefixed) Get(ctx context.Context, key string) (KVPair, error) {
	kv, err := p.Store.Get(ctx, p.abs(key))
	kv.Key = p.rel(kv.Key)
	return kv, err
}

func (p *prefixed) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return p.Store.Put(ctx, p.abs(key), value)
}

func (p *prefixed) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	return p.Store.Create(ctx, p.abs(key), value)
}

func (p *prefixed) CompareAndSwap(ctx context.Context, key string, value []byte, version uint64) (uint64, error) {
	return p.Store.CompareAndSwap(ctx, p.abs(key), value, version)
}

func (p *prefixed) Delete(ctx context.Context, key string) error {
	return p.Store.Delete(ctx, p.abs(key))
}

func (p *prefixed) CompareAndDelete(ctx context.Context, key string, version uint64) error {
	return p.Store.CompareAndDelete(ctx, p.abs(key), version)
}

func (p *prefixed) List(ctx context.Context, prefix string) ([]KVPair, uint64, error) {
	kvs, rev, err := p.Store.List(ctx, p.abs(prefix))
	return p.relPairs(kvs), rev, err
}

func (p *prefixed) Txn(ctx context.Context, ops ...Op) error {
	abs := make([]Op, len(ops))
	for i, op := range ops {
		op.Key = p.abs(op.Key)
		abs[i] = op
	}
	err := p.Store.Txn(ctx, abs...)
	if te := (*TxnError)(nil); errors.As(err, &te) {
		te.Key = p.rel(te.Key)
	}
	return err
}

func (p *prefixed) Watch(ctx context.Context, prefix string, version uint64) (<-chan Event, error) {
	in, err := p.Store.Watch(ctx, p.abs(prefix), version)
	if err != nil {
		return nil, err
	}
	out := make(chan Event)
	go func() {
		defer close(out)
		for ev := range in {
			ev.Key = p.rel(ev.Key)
			ev.Snapshot = p.relPairs(ev.Snapshot)
			select {
			case out <- ev:
			case <-ctx.Done():
				// Drain so the backend's goroutine can finish.
				for range in {
				}
				return
			}
		}
	}()
	return out, nil
}

func (p *prefixed) Register(ctx context.Context, key string, value []byte, ttl time.Duration) (Registration, error) {
	r, err := p.Store.Register(ctx, p.abs(key), value, ttl)
	if err != nil {
		return nil, err
	}
	return prefixedRegistration{Registration: r, key: key}, nil
}

type prefixedRegistration struct {
	Registration
	key string
}

func (r prefixedRegistration) Key() string { return r.key }
