// Package zookeeper is the kvstore backend for Apache ZooKeeper (3.5 or
// later), on the github.com/go-zookeeper/zk client.
//
// # Keys in the tree
//
// ZooKeeper keeps a tree of znodes, not a flat key space. A key is mapped
// onto it segment by segment: "meshnet/v1/ips/NET/10.0.0.5" is the znode
// /meshnet/v1/ips/NET/10.0.0.5, so the layout reads the same in zkCli as in
// etcdctl. Bytes ZooKeeper does not allow in a name are %-escaped (see
// escapeSegment), so every key has exactly one znode. The znodes above a key
// are directories: persistent znodes without data (null, not empty),
// created in the same transaction as the first key under them and removed
// again when their last child goes. A key is a znode with data — possibly
// empty — so a key may also be the directory of longer keys, as in a flat
// store. A prefix's keys are the subtree under its last complete segment,
// filtered by the rest ("meshnet/v1/sub" is the children of /meshnet/v1
// whose names start with "sub", and everything under them).
//
// # Versions
//
// A key's version is the zxid of the transaction that last wrote its znode
// (the stat's mzxid): it grows store-wide, so watches can order events and
// resume from it. ZooKeeper conditions writes on a znode's own data version
// instead, so a conditional write first reads the znode, checks that its
// mzxid is the caller's version, and then writes conditioned on the data
// version it read; if the znode changed in between, the write fails and
// the read is repeated. (Data versions restart when a znode is created
// again: a key deleted and re-created by others between that read and
// that write, and written back to the same data version, would go
// unnoticed — a window of one round trip, which ZooKeeper's API cannot
// close.) Create-if-absent is a create. Every write, single-key or not, is
// one multi-op transaction (Multi), which also returns the new mzxid. A
// List or Watch reports as its version the newest zxid seen in the subtree
// (mzxids of the znodes, and pzxids, the zxid of the last child created or
// deleted under a znode).
//
// # Registrations
//
// A TTL registration is an ephemeral znode in a session of its own whose
// timeout is the TTL (the server bounds it by minSessionTimeout and
// maxSessionTimeout, by default 4 s to 40 s). The client library pings to
// keep the session alive and reconnects within it; if the session expires
// anyway (an outage longer than the TTL), the registration opens a new one
// and creates the znode again. Close does not close these sessions: it
// drops their connections, so the keys expire with their TTL as if the
// process had died.
//
// # Watches
//
// ZooKeeper's watches fire once and carry no history. List and Watch keep
// a picture of the subtree up to date with them (see mirror.go), and a
// watch sends the differences between successive pictures (watch.go).
//
// # Calls, outages and credentials
//
// The client library takes no contexts. Every request runs in a goroutine
// the Store owns and waits for; the caller returns at its deadline (and the
// configured timeout) with ErrUnavailable. While the server is unreachable
// the library fails queued requests about once a second, and Close fails
// them all at once. username/password are ZooKeeper digest authentication:
// znodes the client creates carry a digest ACL for that identity, and a
// client with other credentials gets ErrPermission. ZooKeeper checks ACLs
// per znode, so a Get of a missing key also reads its directory, which
// tells wrong credentials apart from a missing key, as on the other
// backends. TLS (ca, cert, key) needs a server with a secureClientPort
// (and the Netty connection factory).
package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
)

var _ kvstore.Store = (*Store)(nil)

// sessionTimeout is the main connection's session timeout. It holds no
// ephemeral znodes, so it only bounds how long a silent (not closed)
// connection takes to be noticed: two thirds of it.
const sessionTimeout = 15 * time.Second

// Store is a kvstore.Store on a ZooKeeper client session.
type Store struct {
	cfg      kvstore.Config
	conn     *zk.Conn
	dial     *dialer
	acl      []zk.ACL   // given to every znode the client creates
	dirs     dirCache   // directories known to exist
	watches  watchTable // watches set on the connection (armed.go)
	timeout  time.Duration
	endpoint string // for messages

	// afterRootRead, if set (by tests), runs in a mirror's refresh after
	// the root's children are read; an error fails the refresh there.
	afterRootRead func() error

	authed  chan struct{} // closed once the digest credentials are accepted
	authErr error         // set before authed is closed

	// bg is cancelled by Close; registrations, watches and the
	// authentication run under it and are counted in wg. calls counts the
	// requests in flight.
	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once

	mu          sync.Mutex // guards the fields below, and Adds to calls
	shut        bool
	calls       sync.WaitGroup       // added to only while !shut
	mirrors     map[*mirror]struct{} // every mirror, for notifications
	listMirrors map[string]*mirror   // List's, by prefix
	regs        map[*registration]struct{}
}

// New makes a client for the ZooKeeper servers in cfg. It does not wait
// for them, so the caller can start while ZooKeeper is down.
func New(cfg kvstore.Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("zookeeper: no endpoints")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = kvstore.DefaultTimeout
	}
	tlsCfg, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:         cfg,
		dial:        newDialer(cfg, tlsCfg),
		acl:         zk.WorldACL(zk.PermAll),
		timeout:     cfg.Timeout,
		endpoint:    "zookeeper at " + strings.Join(cfg.Endpoints, ","),
		authed:      make(chan struct{}),
		mirrors:     map[*mirror]struct{}{},
		listMirrors: map[string]*mirror{},
		regs:        map[*registration]struct{}{},
	}
	if cfg.Username != "" {
		s.acl = zk.DigestACL(zk.PermAll, cfg.Username, cfg.Password)
	}
	s.conn, err = connect(cfg.Endpoints, s.dial, sessionTimeout, s.onEvent)
	if err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	s.bg, s.stop = context.WithCancel(context.Background())
	if cfg.Username == "" {
		close(s.authed)
	} else {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.authenticate()
		}()
	}
	return s, nil
}

// authenticate sends the digest credentials until the server takes them.
// The library sends them again by itself after every reconnection; calls
// wait for the first success.
func (s *Store) authenticate() {
	defer close(s.authed)
	retry := backoff.New(100*time.Millisecond, 2*time.Second)
	for s.bg.Err() == nil {
		err := s.conn.AddAuth("digest", []byte(s.cfg.Username+":"+s.cfg.Password))
		if err == nil {
			return
		}
		if errors.Is(err, zk.ErrAuthFailed) || errors.Is(err, zk.ErrNoAuth) {
			s.authErr = fmt.Errorf("%w: %s: %v", kvstore.ErrPermission, s.endpoint, err)
			return
		}
		retry.Wait(s.bg)
	}
	s.authErr = fmt.Errorf("%w: %s: closed", kvstore.ErrUnavailable, s.endpoint)
}

// Conn exposes the underlying ZooKeeper client (for tests and tools).
func (s *Store) Conn() *zk.Conn { return s.conn }

// Close stops watches, abandons the registrations' sessions (their keys
// expire with their TTL) and closes the client.
func (s *Store) Close() error {
	s.closed.Do(func() {
		s.mu.Lock()
		s.shut = true
		regs := make([]*registration, 0, len(s.regs))
		for r := range s.regs {
			regs = append(regs, r)
		}
		s.mu.Unlock()
		s.stop()
		for _, r := range regs {
			r.abandon()
		}
		s.conn.Close() // fails the requests in flight
		s.wg.Wait()
		s.calls.Wait()
	})
	return nil
}

// call bounds one operation by the store's timeout.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// request runs fn, which makes blocking requests on the client, and
// returns its results, or ctx's error once ctx is done. The goroutine
// running fn is counted in s.calls; when the caller has gone, it ends on
// its own as the library answers or fails the requests (at the latest when
// the client is closed), and its results are dropped. Results travel only
// through the channel, so a caller that gave up never races with fn.
func request[T any](ctx context.Context, s *Store, fn func() (T, error)) (T, error) {
	var zero T
	select {
	case <-s.authed:
		if s.authErr != nil {
			return zero, s.authErr
		}
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return zero, fmt.Errorf("%w: %s: the client is closed", kvstore.ErrUnavailable, s.endpoint)
	}
	s.calls.Add(1)
	s.mu.Unlock()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer s.calls.Done()
		v, err := fn()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// do is request for requests without results.
func (s *Store) do(ctx context.Context, fn func() error) error {
	_, err := request(ctx, s, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}

// nodeData is a znode's data (nil for a directory) and stat.
type nodeData struct {
	data []byte
	stat *zk.Stat
}

// get reads a znode on conn.
func (s *Store) get(ctx context.Context, conn *zk.Conn, path string) (nodeData, error) {
	return request(ctx, s, func() (nodeData, error) {
		data, st, err := conn.Get(path)
		return nodeData{data, st}, err
	})
}

// exists reads a znode's stat on conn; nil if there is no such znode.
func (s *Store) exists(ctx context.Context, conn *zk.Conn, path string) (*zk.Stat, error) {
	return request(ctx, s, func() (*zk.Stat, error) {
		ok, st, err := conn.Exists(path)
		if !ok {
			st = nil
		}
		return st, err
	})
}

// mapErr turns client and server errors into kvstore sentinels with a
// short message. A cancellation by the caller is passed through untouched;
// ErrNoNode, ErrNodeExists and ErrBadVersion are left to the callers, which
// know what they mean for the operation.
func (s *Store) mapErr(err error) error {
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %s did not answer in time", kvstore.ErrUnavailable, s.endpoint)
	case errors.Is(err, kvstore.ErrUnavailable), errors.Is(err, kvstore.ErrPermission):
		return err
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed), errors.Is(err, zk.ErrInvalidACL):
		return fmt.Errorf("%w: %s: %v", kvstore.ErrPermission, s.endpoint, err)
	case errors.Is(err, zk.ErrNoServer), errors.Is(err, zk.ErrConnectionClosed),
		errors.Is(err, zk.ErrSessionExpired), errors.Is(err, zk.ErrSessionMoved),
		errors.Is(err, zk.ErrClosing), errors.Is(err, io.EOF), errors.As(err, &ne):
		return fmt.Errorf("%w: %s is not reachable", kvstore.ErrUnavailable, s.endpoint)
	}
	return fmt.Errorf("%s: %w", s.endpoint, err)
}

// onEvent receives every session and watch event of the main connection
// from the client library, which must not be blocked.
func (s *Store) onEvent(ev zk.Event) {
	s.watches.fired(ev) // first: a mirror woken by ev sets them again
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := range s.mirrors {
		m.notify(ev)
	}
}

// value is what a key's znode holds: never nil, since a znode without data
// is a directory.
func value(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// Get implements kvstore.Store.
func (s *Store) Get(ctx context.Context, key string) (kvstore.KVPair, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	path := znodePath(key)
	n, err := s.get(ctx, s.conn, path)
	if err == nil && n.data != nil {
		return kvstore.KVPair{Key: key, Value: n.data, Version: uint64(n.stat.Mzxid)}, nil
	}
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return kvstore.KVPair{}, s.mapErr(err)
	}
	if err != nil {
		// Missing: if the directory refuses this client, say so.
		_, err = s.get(ctx, s.conn, parentOf(path))
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return kvstore.KVPair{}, s.mapErr(err)
		}
	}
	return kvstore.KVPair{}, fmt.Errorf("%s: %w", key, kvstore.ErrKeyNotFound)
}

// Put implements kvstore.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return s.txnOne(ctx, kvstore.Op{Kind: kvstore.OpPut, Key: key, Value: value})
}

// Create implements kvstore.Store.
func (s *Store) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	return s.txnOne(ctx, kvstore.Op{Kind: kvstore.OpCreate, Key: key, Value: value})
}

// CompareAndSwap implements kvstore.Store.
func (s *Store) CompareAndSwap(ctx context.Context, key string, value []byte, version uint64) (uint64, error) {
	return s.txnOne(ctx, kvstore.Op{Kind: kvstore.OpSwap, Key: key, Value: value, Version: version})
}

// Delete implements kvstore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.txnOne(ctx, kvstore.Op{Kind: kvstore.OpDelete, Key: key})
	return err
}

// CompareAndDelete implements kvstore.Store.
func (s *Store) CompareAndDelete(ctx context.Context, key string, version uint64) error {
	_, err := s.txnOne(ctx, kvstore.Op{Kind: kvstore.OpCompareDelete, Key: key, Version: version})
	return err
}

// callNames name the single-key calls for their messages.
var callNames = map[kvstore.OpKind]string{
	kvstore.OpCreate: "Create", kvstore.OpPut: "Put", kvstore.OpSwap: "CompareAndSwap",
	kvstore.OpDelete: "Delete", kvstore.OpCompareDelete: "CompareAndDelete",
}

// txnOne runs a single op and unwraps the TxnError, whose index means
// nothing to a single-key caller. It checks the call itself first, so
// that a bad call is told in its own words, not a transaction's.
func (s *Store) txnOne(ctx context.Context, op kvstore.Op) (uint64, error) {
	switch {
	case op.Key == "":
		return 0, fmt.Errorf("%s of an empty key", callNames[op.Kind])
	case (op.Kind == kvstore.OpSwap || op.Kind == kvstore.OpCompareDelete) && op.Version == 0:
		return 0, fmt.Errorf("%s of %s without a version", callNames[op.Kind], op.Key)
	}
	version, err := s.txn(ctx, []kvstore.Op{op})
	if te := (*kvstore.TxnError)(nil); errors.As(err, &te) {
		return 0, fmt.Errorf("%s: %w", op.Key, te.Err)
	}
	return version, err
}
