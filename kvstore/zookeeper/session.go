package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
)

// registration is a key held by an ephemeral znode of a ZooKeeper session
// of its own, whose timeout is the TTL: the server deletes the znode when
// the session ends, closed or expired. The client library keeps the
// session alive; the registration's goroutine checks the znode at a third
// of the TTL and on every new session, and creates it again (in the
// session the library then has) if it is gone.
type registration struct {
	s    *Store
	key  string
	path string
	ttl  time.Duration
	dial *dialer
	conn *zk.Conn
	wake chan struct{} // capacity 1: a session came or went

	mu    sync.Mutex // guards value and owner
	value []byte
	owner int64 // the session that created the znode

	cancel context.CancelFunc // nil until the goroutine runs
	done   chan struct{}
	once   sync.Once
}

// Register implements kvstore.Store. The TTL becomes the session timeout,
// which the server bounds by its minSessionTimeout and maxSessionTimeout.
// A znode already at the key (left by a holder that died, or a plain key)
// is replaced, as an etcd Put with a new lease would.
func (s *Store) Register(ctx context.Context, key string, value []byte, ttl time.Duration) (kvstore.Registration, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	r := &registration{s: s, key: key, path: znodePath(key), ttl: max(ttl, time.Second),
		dial: newDialer(s.cfg, s.dial.tls), value: value, wake: make(chan struct{}, 1), done: make(chan struct{})}
	var err error
	if r.conn, err = connect(s.cfg.Endpoints, r.dial, r.ttl, r.onEvent); err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	if s.cfg.Username != "" {
		err = s.do(ctx, func() error {
			return r.conn.AddAuth("digest", []byte(s.cfg.Username+":"+s.cfg.Password))
		})
	}
	if err == nil {
		err = r.establish(ctx)
	}
	if err != nil {
		r.abandon()
		return nil, fmt.Errorf("registering %s: %w", key, s.mapErr(err))
	}
	var rctx context.Context
	rctx, r.cancel = context.WithCancel(s.bg)
	s.mu.Lock()
	s.regs[r] = struct{}{}
	s.mu.Unlock()
	if !s.goOwned(func() {
		defer close(r.done)
		r.keepAlive(rctx)
	}) {
		close(r.done)
		r.abandon()
		return nil, fmt.Errorf("registering %s: %w: the client is closed", key, kvstore.ErrUnavailable)
	}
	return r, nil
}

// onEvent takes the session's events from the client library: it must
// not block.
func (r *registration) onEvent(ev zk.Event) {
	if ev.Type == zk.EventSession && (ev.State == zk.StateHasSession || ev.State == zk.StateExpired) {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// establish creates the ephemeral znode with the current value, replacing
// a znode that another session holds.
func (r *registration) establish(ctx context.Context) error {
	r.mu.Lock()
	v := value(r.value)
	r.mu.Unlock()
	for {
		session := r.conn.SessionID()
		err := r.s.do(ctx, func() error {
			_, err := r.conn.Create(r.path, v, zk.FlagEphemeral, r.s.acl)
			return err
		})
		switch {
		case err == nil:
			r.setOwner(session)
			return nil
		case errors.Is(err, zk.ErrNoNode):
			if err := r.s.mkdirs(ctx, r.conn, parentOf(r.path)); err != nil {
				return err
			}
			continue
		case !errors.Is(err, zk.ErrNodeExists):
			return err
		}
		st, err := r.s.exists(ctx, r.conn, r.path)
		if err != nil {
			return err
		}
		if st == nil {
			continue
		}
		err = r.s.do(ctx, func() error {
			_, err := r.conn.Multi(&zk.DeleteRequest{Path: r.path, Version: st.Version},
				&zk.CreateRequest{Path: r.path, Data: v, Acl: r.s.acl, Flags: zk.FlagEphemeral})
			return err
		})
		switch {
		case err == nil:
			r.setOwner(session)
			return nil
		case errors.Is(err, zk.ErrNotEmpty):
			return fmt.Errorf("%s is the directory of other keys, which an ephemeral znode cannot be", r.key)
		case !errors.Is(err, zk.ErrNodeExists) && !errors.Is(err, zk.ErrBadVersion) && !errors.Is(err, zk.ErrNoNode):
			return err
		}
	}
}

func (r *registration) setOwner(session int64) {
	r.mu.Lock()
	r.owner = session
	r.mu.Unlock()
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
		case <-r.wake:
		}
		for ctx.Err() == nil {
			if err := r.check(ctx); err == nil {
				retry.Reset()
				break
			}
			retry.Wait(ctx)
		}
	}
}

// check creates the znode again if it is gone (the session expired, or
// someone deleted it), or replaces it if a session of this registration
// that has expired still holds it (the server deletes it soon). A znode
// that another holder took over is left to it.
func (r *registration) check(ctx context.Context) error {
	ctx, cancel := r.s.call(ctx)
	defer cancel()
	st, err := r.s.exists(ctx, r.conn, r.path)
	if err != nil {
		return err
	}
	r.mu.Lock()
	owner := r.owner
	r.mu.Unlock()
	if st != nil && (st.EphemeralOwner != owner || owner == r.conn.SessionID()) {
		return nil
	}
	return r.establish(ctx)
}

func (r *registration) Key() string { return r.key }

// Update implements kvstore.Registration.
func (r *registration) Update(ctx context.Context, v []byte) error {
	r.mu.Lock()
	r.value = v
	r.mu.Unlock()
	ctx, cancel := r.s.call(ctx)
	defer cancel()
	err := r.s.do(ctx, func() error {
		_, err := r.conn.Set(r.path, value(v), -1)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		err = r.establish(ctx)
	}
	if err != nil {
		return fmt.Errorf("updating %s: %w", r.key, r.s.mapErr(err))
	}
	return nil
}

// Revoke implements kvstore.Registration: closing the session deletes the
// znode. If the server did not get the close, the znode is deleted by the
// main connection if it is still this registration's; when that fails
// too, Revoke returns the error and may be called again (the znode
// expires with the TTL meanwhile).
func (r *registration) Revoke(ctx context.Context) error {
	r.once.Do(func() {
		r.stopKeepAlive()
		r.conn.Close()
		r.s.forget(r)
	})
	r.mu.Lock()
	owner := r.owner
	r.mu.Unlock()
	ctx, cancel := r.s.call(ctx)
	defer cancel()
	st, err := r.s.exists(ctx, r.s.conn, r.path)
	if err == nil && st != nil && st.EphemeralOwner == owner {
		err = r.s.do(ctx, func() error { return r.s.conn.Delete(r.path, st.Version) })
		if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("revoking %s: %w", r.key, r.s.mapErr(err))
	}
	r.s.prune(ctx, r.s.conn, parentOf(r.path))
	return nil
}

// abandon stops the registration without closing its session, as if the
// process had died: the server deletes the znode when the session expires.
func (r *registration) abandon() {
	r.once.Do(func() {
		r.stopKeepAlive()
		r.dial.abandon()
		r.conn.Close() // the close request cannot reach the server any more
		r.s.forget(r)
	})
}

func (r *registration) stopKeepAlive() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

// forget drops r from the registrations that Close abandons.
func (s *Store) forget(r *registration) {
	s.mu.Lock()
	delete(s.regs, r)
	s.mu.Unlock()
}

// goOwned runs fn in a goroutine that Close waits for, unless the store is
// closed.
func (s *Store) goOwned(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}
