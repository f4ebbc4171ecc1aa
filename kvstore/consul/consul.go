// Package consul is the kvstore backend for Consul's KV store. Versions are
// Consul ModifyIndexes; every write goes through the /v1/txn endpoint (it
// reports the new index and carries the conditions: cas, delete-cas,
// check-index); watches are blocking queries; TTL registrations are
// sessions with the delete behaviour.
package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/meshnet/meshnet/kvstore"
)

var _ kvstore.Store = (*Store)(nil)

// Store is a kvstore.Store on a Consul agent's HTTP API.
type Store struct {
	client   *api.Client
	timeout  time.Duration
	endpoint string // for messages

	bg     context.Context // cancelled by Close; watches and sessions run under it
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// New makes a client for the Consul agent in cfg. It does not contact the
// agent, so the caller can start while Consul is down.
func New(cfg kvstore.Config) (*Store, error) {
	if len(cfg.Endpoints) != 1 {
		return nil, errors.New("consul: exactly one endpoint is needed")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = kvstore.DefaultTimeout
	}
	ac := api.DefaultConfig()
	ac.Address = cfg.Endpoints[0]
	ac.Scheme = "http"
	ac.Token = cfg.Token
	// Keep enough idle connections for many concurrent callers; the
	// default (GOMAXPROCS+1) makes a busy agent open a connection per call
	// and run into Consul's per-client connection limit (429).
	ac.Transport.MaxIdleConnsPerHost = 64
	if cfg.Dial != nil {
		ac.Transport.DialContext = cfg.Dial
	}
	if cfg.CAFile != "" || cfg.CertFile != "" {
		if _, err := cfg.TLSConfig(); err != nil { // check the files now, with a clear error
			return nil, err
		}
		ac.Scheme = "https"
		ac.TLSConfig = api.TLSConfig{CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	s := &Store{client: client, timeout: timeout, endpoint: "consul at " + cfg.Endpoints[0]}
	s.bg, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Client exposes the underlying Consul client (for tests and tools).
func (s *Store) Client() *api.Client { return s.client }

// Close stops watches and session renewals. Sessions are not destroyed:
// their keys go when the sessions' TTLs run out.
func (s *Store) Close() error {
	s.closed.Do(func() {
		s.stop()
		s.wg.Wait()
	})
	return nil
}

func (s *Store) query(ctx context.Context) (*api.QueryOptions, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	return (&api.QueryOptions{}).WithContext(ctx), cancel
}

// mapErr turns HTTP and Consul errors into kvstore sentinels.
func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s did not answer in time", kvstore.ErrUnavailable, s.endpoint)
	}
	var se api.StatusError
	if errors.As(err, &se) {
		switch {
		case se.Code == 401 || se.Code == 403:
			return fmt.Errorf("%w: %s: %s", kvstore.ErrPermission, s.endpoint, se.Body)
		case se.Code == 429 || se.Code >= 500:
			return fmt.Errorf("%w: %s: %s", kvstore.ErrUnavailable, s.endpoint, se.Body)
		}
		return fmt.Errorf("%s: %s", s.endpoint, se.Body)
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return fmt.Errorf("%w: %s is not reachable", kvstore.ErrUnavailable, s.endpoint)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Permission denied") || strings.Contains(msg, "ACL not found"):
		return fmt.Errorf("%w: %s: %s", kvstore.ErrPermission, s.endpoint, msg)
	case strings.Contains(msg, "No cluster leader") || strings.Contains(msg, "leader") ||
		strings.Contains(msg, "Too Many Requests") || strings.Contains(msg, "rate limit"):
		return fmt.Errorf("%w: %s: %s", kvstore.ErrUnavailable, s.endpoint, msg)
	}
	return fmt.Errorf("%s: %w", s.endpoint, err)
}

// Get implements kvstore.Store.
func (s *Store) Get(ctx context.Context, key string) (kvstore.KVPair, error) {
	q, cancel := s.query(ctx)
	defer cancel()
	kv, _, err := s.client.KV().Get(key, q)
	if err != nil {
		return kvstore.KVPair{}, s.mapErr(err)
	}
	if kv == nil {
		return kvstore.KVPair{}, fmt.Errorf("%s: %w", key, kvstore.ErrKeyNotFound)
	}
	return kvstore.KVPair{Key: kv.Key, Value: kv.Value, Version: kv.ModifyIndex}, nil
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

func (s *Store) txnOne(ctx context.Context, op kvstore.Op) (uint64, error) {
	idx, err := s.txn(ctx, []kvstore.Op{op})
	if te := (*kvstore.TxnError)(nil); errors.As(err, &te) {
		return 0, fmt.Errorf("%s: %w", op.Key, te.Err)
	}
	return idx, err
}

// List implements kvstore.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]kvstore.KVPair, uint64, error) {
	q, cancel := s.query(ctx)
	defer cancel()
	pairs, meta, err := s.client.KV().List(prefix, q)
	if err != nil {
		return nil, 0, s.mapErr(err)
	}
	return toPairs(pairs), meta.LastIndex, nil
}

func toPairs(pairs api.KVPairs) []kvstore.KVPair {
	kvs := make([]kvstore.KVPair, len(pairs))
	for i, p := range pairs {
		kvs[i] = kvstore.KVPair{Key: p.Key, Value: p.Value, Version: p.ModifyIndex}
	}
	return kvs
}

// Txn implements kvstore.Store. Consul allows at most 64 operations in one
// transaction; OpDelete takes two (a get that fails if the key is absent,
// then the delete).
func (s *Store) Txn(ctx context.Context, ops ...kvstore.Op) error {
	_, err := s.txn(ctx, ops)
	return err
}

func (s *Store) txn(ctx context.Context, ops []kvstore.Op) (uint64, error) {
	if err := kvstore.CheckOps(ops); err != nil {
		return 0, err
	}
	var tops api.TxnOps
	var owner []int // our op index for each Consul op
	add := func(i int, op *api.KVTxnOp) {
		tops = append(tops, &api.TxnOp{KV: op})
		owner = append(owner, i)
	}
	for i, op := range ops {
		switch op.Kind {
		case kvstore.OpCreate:
			add(i, &api.KVTxnOp{Verb: api.KVCAS, Key: op.Key, Value: op.Value, Index: 0})
		case kvstore.OpPut:
			add(i, &api.KVTxnOp{Verb: api.KVSet, Key: op.Key, Value: op.Value})
		case kvstore.OpSwap:
			add(i, &api.KVTxnOp{Verb: api.KVCAS, Key: op.Key, Value: op.Value, Index: op.Version})
		case kvstore.OpDelete:
			add(i, &api.KVTxnOp{Verb: api.KVGet, Key: op.Key})
			add(i, &api.KVTxnOp{Verb: api.KVDelete, Key: op.Key})
		case kvstore.OpCompareDelete:
			// delete-cas alone succeeds on a missing key; check-index
			// fails on one.
			add(i, &api.KVTxnOp{Verb: api.KVCheckIndex, Key: op.Key, Index: op.Version})
			add(i, &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: op.Key, Index: op.Version})
		case kvstore.OpCheck:
			add(i, &api.KVTxnOp{Verb: api.KVCheckIndex, Key: op.Key, Index: op.Version})
		default:
			return 0, fmt.Errorf("unknown transaction op kind %d", op.Kind)
		}
	}
	q, cancel := s.query(ctx)
	defer cancel()
	ok, resp, _, err := s.client.Txn().Txn(tops, q)
	if err != nil {
		return 0, s.mapErr(err)
	}
	if ok {
		// The new version is the ModifyIndex of what was written; a
		// transaction of deletes only reports none.
		var version uint64
		for _, r := range resp.Results {
			if r.KV != nil && r.KV.ModifyIndex > version {
				version = r.KV.ModifyIndex
			}
		}
		return version, nil
	}
	if len(resp.Errors) == 0 {
		return 0, fmt.Errorf("%s: transaction rolled back without a reason", s.endpoint)
	}
	what := resp.Errors[0].What
	if strings.Contains(what, "Permission denied") || strings.Contains(what, "ACL not found") {
		return 0, fmt.Errorf("%w: %s: %s", kvstore.ErrPermission, s.endpoint, what)
	}
	i := owner[resp.Errors[0].OpIndex]
	return 0, &kvstore.TxnError{Index: i, Key: ops[i].Key, Err: s.classify(ctx, ops[i], what)}
}

// classify reads the key of a failed condition to say why it failed;
// Consul's own reason is a free-form sentence.
func (s *Store) classify(ctx context.Context, op kvstore.Op, what string) error {
	_, err := s.Get(ctx, op.Key)
	switch {
	case errors.Is(err, kvstore.ErrKeyNotFound):
		if op.Kind == kvstore.OpCreate {
			return kvstore.ErrKeyModified // created and deleted again in between
		}
		return kvstore.ErrKeyNotFound
	case err != nil:
		return err // could not tell; most likely the store is unreachable
	case op.Kind == kvstore.OpCreate:
		return kvstore.ErrKeyExists
	}
	return kvstore.ErrKeyModified
}
