package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
)

// registration is a key acquired by a Consul session with the "delete"
// behaviour: when the session ends (destroyed, or its TTL passes without a
// renewal) Consul deletes the key. Its goroutine renews the session at a
// third of the TTL and, if the session or the key was lost, makes a new
// session and acquires the key again.
type registration struct {
	s   *Store
	key string
	ttl time.Duration

	mu      sync.Mutex // guards value and session
	value   []byte
	session string

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Register implements kvstore.Store. Consul refuses TTLs below its
// session_ttl_min (10s by default) and ends a session only after twice the
// TTL without a renewal.
func (s *Store) Register(ctx context.Context, key string, value []byte, ttl time.Duration) (kvstore.Registration, error) {
	r := &registration{s: s, key: key, value: value, ttl: ttl.Round(time.Second), done: make(chan struct{})}
	if r.ttl < time.Second {
		r.ttl = time.Second
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

// establish creates a session and acquires the key with it.
func (r *registration) establish(ctx context.Context) error {
	q, cancel := r.s.query(ctx)
	defer cancel()
	w := (&api.WriteOptions{}).WithContext(q.Context())
	id, _, err := r.s.client.Session().Create(&api.SessionEntry{
		Name:      "meshnet " + r.key,
		TTL:       r.ttl.String(),
		Behavior:  api.SessionBehaviorDelete,
		LockDelay: time.Millisecond, // let a restarted holder re-acquire at once
	}, w)
	if err != nil {
		return fmt.Errorf("creating session for %s: %w", r.key, r.s.mapErr(err))
	}
	r.mu.Lock()
	r.session = id
	r.mu.Unlock()
	return r.acquire(ctx)
}

// acquire writes the current value under the current session.
func (r *registration) acquire(ctx context.Context) error {
	r.mu.Lock()
	value, session := r.value, r.session
	r.mu.Unlock()
	q, cancel := r.s.query(ctx)
	defer cancel()
	w := (&api.WriteOptions{}).WithContext(q.Context())
	ok, _, err := r.s.client.KV().Acquire(&api.KVPair{Key: r.key, Value: value, Session: session}, w)
	if err != nil {
		return fmt.Errorf("acquiring %s: %w", r.key, r.s.mapErr(err))
	}
	if !ok {
		return fmt.Errorf("acquiring %s: %w (held by another session)", r.key, kvstore.ErrKeyExists)
	}
	return nil
}

func (r *registration) keepAlive(ctx context.Context) {
	tick := time.NewTicker(r.ttl / 3)
	defer tick.Stop()
	retry := backoff.New(100*time.Millisecond, 2*time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for ctx.Err() == nil {
			if err := r.refresh(ctx); err == nil {
				retry.Reset()
				break
			}
			retry.Wait(ctx)
		}
	}
}

// refresh renews the session; if it is gone, or the key no longer belongs
// to it, it starts over.
func (r *registration) refresh(ctx context.Context) error {
	r.mu.Lock()
	session := r.session
	r.mu.Unlock()
	q, cancel := r.s.query(ctx)
	defer cancel()
	w := (&api.WriteOptions{}).WithContext(q.Context())
	entry, _, err := r.s.client.Session().Renew(session, w)
	if err != nil {
		return r.s.mapErr(err)
	}
	if entry == nil {
		return r.establish(ctx)
	}
	kv, _, err := r.s.client.KV().Get(r.key, q)
	if err != nil {
		return r.s.mapErr(err)
	}
	if kv == nil || kv.Session != session {
		return r.acquire(ctx)
	}
	return nil
}

func (r *registration) Key() string { return r.key }

// Update implements kvstore.Registration.
func (r *registration) Update(ctx context.Context, value []byte) error {
	r.mu.Lock()
	r.value = value
	r.mu.Unlock()
	return r.acquire(ctx)
}

// Revoke implements kvstore.Registration: destroying the session deletes
// the key.
func (r *registration) Revoke(ctx context.Context) error {
	r.once.Do(func() {
		r.cancel()
		<-r.done
	})
	r.mu.Lock()
	session := r.session
	r.mu.Unlock()
	q, cancel := r.s.query(ctx)
	defer cancel()
	w := (&api.WriteOptions{}).WithContext(q.Context())
	if _, err := r.s.client.Session().Destroy(session, w); err != nil {
		var se api.StatusError
		if errors.As(err, &se) && se.Code == 404 {
			return nil
		}
		return fmt.Errorf("destroying session of %s: %w", r.key, r.s.mapErr(err))
	}
	return nil
}
