// Package kvstore is the one small interface through which meshnet keeps its
// global state (nodes, networks, leases) in the cluster store.
//
// Every backend (kvstore/etcd, kvstore/consul, kvstore/zookeeper, and the
// embedded etcd server reached through the etcd backend) implements Store
// with the same semantics
// and maps its own failures onto the sentinel errors below, so that callers
// can write allocation loops once:
//
//	for {
//		kv, err := s.Get(ctx, key)            // read
//		...                                   // decide
//		_, err = s.CompareAndSwap(ctx, key, v, kv.Version)
//		if errors.Is(err, kvstore.ErrKeyModified) {
//			continue                          // someone else won; re-read
//		}
//		...
//	}
//
// Versions are the backend's own modification index (etcd's ModRevision,
// Consul's ModifyIndex, ZooKeeper's mzxid, the zxid of the transaction that
// last wrote the znode). They only ever grow for a key, and a List or Watch
// reports the store-wide version it saw so that a watch can start exactly
// where a listing ended.
//
// Keys are relative: the root prefix under which meshnet lives (default
// "meshnet/v1/") is added in one place, by WithPrefix.
package kvstore

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them (errors.Is works) and may join a more
// specific cause for the message.
var (
	// ErrKeyNotFound: the key does not exist.
	ErrKeyNotFound = errors.New("key not found")
	// ErrKeyExists: a create-if-absent found the key already there.
	ErrKeyExists = errors.New("key already exists")
	// ErrKeyModified: a compare-and-swap or compare-and-delete lost because
	// the key changed (or was deleted) since the version the caller read.
	ErrKeyModified = errors.New("key modified by someone else")
	// ErrUnavailable: the store could not be reached or did not answer in
	// time. Nothing can be said about whether a write took effect.
	ErrUnavailable = errors.New("cluster store unavailable")
	// ErrPermission: the store refused the credentials (ACL token,
	// username/password, client certificate).
	ErrPermission = errors.New("cluster store refused the credentials")
)

// KVPair is one key with its value and the version that last wrote it.
type KVPair struct {
	Key     string
	Value   []byte
	Version uint64
}

// EventType says what a watch event means.
type EventType int

const (
	// EventPut: the key was created or changed; Value and Version are set.
	EventPut EventType = iota
	// EventDelete: the key was deleted (or its lease expired).
	EventDelete
	// EventReset: the watch could not replay history from the requested
	// version (it was compacted away, or the backend keeps no history of
	// deletes: Consul, ZooKeeper). Snapshot holds the complete current
	// contents under the
	// prefix; the consumer replaces its view with it and then applies the
	// events that follow.
	EventReset
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventReset:
		return "reset"
	}
	return "unknown"
}

// Event is one change seen by a watch.
type Event struct {
	Type     EventType
	Key      string
	Value    []byte
	Version  uint64
	Snapshot []KVPair // EventReset only
}

// OpKind is the kind of one operation in a transaction.
type OpKind int

const (
	// OpCreate writes Value only if Key does not exist.
	OpCreate OpKind = iota
	// OpPut writes Value unconditionally.
	OpPut
	// OpSwap writes Value only if Key is at Version.
	OpSwap
	// OpDelete removes Key; it fails if Key does not exist.
	OpDelete
	// OpCompareDelete removes Key only if it is at Version.
	OpCompareDelete
	// OpCheck writes nothing; it fails unless Key is at Version.
	OpCheck
)

// Op is one operation of a transaction.
type Op struct {
	Kind    OpKind
	Key     string
	Value   []byte
	Version uint64
}

// TxnError says which operation of a failed transaction did not hold.
// It unwraps to the sentinel for that operation (ErrKeyExists,
// ErrKeyModified or ErrKeyNotFound).
type TxnError struct {
	Index int    // position of the failing op in the call
	Key   string // its key
	Err   error
}

func (e *TxnError) Error() string { return "transaction op on " + e.Key + ": " + e.Err.Error() }
func (e *TxnError) Unwrap() error { return e.Err }

// Store is the cluster store.
//
// Every method takes a context and returns by its deadline; backends also
// bound each call by their configured timeout, so no call hangs when the
// server is down: it fails with ErrUnavailable. A Store is safe for
// concurrent use by many goroutines.
type Store interface {
	// Get returns the key, or ErrKeyNotFound.
	Get(ctx context.Context, key string) (KVPair, error)
	// Put writes the key unconditionally and returns its new version.
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	// Create writes the key only if it does not exist (ErrKeyExists).
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// CompareAndSwap writes the key only if its version is still version.
	// It fails with ErrKeyModified if the key changed and ErrKeyNotFound if
	// it is gone. Writing the value the key already holds may succeed
	// without a new version (Consul drops such no-op writes), so callers
	// that race must write values that differ from what they read.
	CompareAndSwap(ctx context.Context, key string, value []byte, version uint64) (uint64, error)
	// Delete removes the key, or returns ErrKeyNotFound.
	Delete(ctx context.Context, key string) error
	// CompareAndDelete removes the key only if its version is still
	// version (ErrKeyModified, ErrKeyNotFound otherwise).
	CompareAndDelete(ctx context.Context, key string, version uint64) error
	// List returns every key under prefix, sorted by key, and a version
	// no older than any key listed: Watch(prefix, version) continues
	// exactly after the listing. (ZooKeeper, which has no snapshot reads,
	// may under writes that never pause return an older version, up to
	// which the listing holds every change; a Watch from it then sends
	// the newer keys again, or starts with an EventReset.)
	List(ctx context.Context, prefix string) ([]KVPair, uint64, error)
	// Txn applies all ops or none. When a condition does not hold it
	// returns a *TxnError naming the first failing op.
	Txn(ctx context.Context, ops ...Op) error
	// Watch streams the changes under prefix made after version, in
	// version order, until ctx is done; then it closes the channel. Store
	// outages do not end a watch: it reconnects and resumes where it was,
	// so nothing is lost. If history from version cannot be replayed, the
	// first event is an EventReset. version 0 means "from now".
	//
	// Backends that keep no history replay what they can and reset the
	// rest: Consul resumes without a reset only if nothing under the prefix
	// changed since version; ZooKeeper, whose watches are one-shot triggers
	// without history, resumes with puts if keys were only written since
	// version (no key created or deleted under the prefix), and with an
	// EventReset otherwise.
	//
	// Backends that observe changes by reading the store again (Consul's
	// blocking queries, ZooKeeper's re-reads after a watch fires) deliver
	// successive writes to one key that fall between two reads as a single
	// event with the latest value. The receiver must keep reading; the
	// watch blocks while the channel is full.
	Watch(ctx context.Context, prefix string, version uint64) (<-chan Event, error)
	// Register writes key bound to a lease of the given TTL and keeps the
	// lease alive in the background until the Registration is revoked or
	// the Store is closed. If the holder dies (stops refreshing) the key
	// disappears within about the TTL. If the lease is lost during an
	// outage the registration re-creates it when the store is back. On
	// ZooKeeper the TTL is the timeout of the session holding the
	// ephemeral znode, bounded by the server's minSessionTimeout and
	// maxSessionTimeout.
	Register(ctx context.Context, key string, value []byte, ttl time.Duration) (Registration, error)
	// Close releases the client. It does not revoke registrations: their
	// keys expire with their TTL as if the process had died.
	Close() error
}

// Registration is a key kept alive by a lease (an etcd lease, a Consul
// session, the ZooKeeper session of an ephemeral znode).
type Registration interface {
	// Key is the registered key, as given to Register.
	Key() string
	// Update replaces the value, still bound to the lease.
	Update(ctx context.Context, value []byte) error
	// Revoke ends the lease now and deletes the key. It is idempotent.
	Revoke(ctx context.Context) error
}

// CheckOps rejects transactions no backend can run the same way: no ops,
// an unknown kind, an empty key, a conditional op without a version (etcd
// would read version 0 as "absent", Consul as "create"), or one key
// written twice.
func CheckOps(ops []Op) error {
	if len(ops) == 0 {
		return errors.New("empty transaction")
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		switch {
		case op.Key == "":
			return errors.New("transaction op with an empty key")
		case op.Kind < OpCreate || op.Kind > OpCheck:
			return errors.New("transaction op of unknown kind")
		case (op.Kind == OpSwap || op.Kind == OpCompareDelete || op.Kind == OpCheck) && op.Version == 0:
			return errors.New("conditional transaction op on " + op.Key + " without a version")
		case seen[op.Key]:
			return errors.New("transaction names " + op.Key + " twice")
		}
		seen[op.Key] = true
	}
	return nil
}

// Ping checks that the store answers (and accepts the credentials) by
// reading a key that need not exist.
func Ping(ctx context.Context, s Store) error {
	_, err := s.Get(ctx, "ping")
	if errors.Is(err, ErrKeyNotFound) {
		return nil
	}
	return err
}
