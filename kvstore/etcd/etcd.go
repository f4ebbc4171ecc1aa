// Package etcd is the kvstore backend for etcd v3 (an etcd cluster, or the
// etcd server the agent embeds). Versions are etcd ModRevisions; conditional
// writes are etcd transactions comparing CreateRevision/ModRevision; TTL
// registrations are etcd leases kept alive by the client.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshnet/meshnet/kvstore"
)

var _ kvstore.Store = (*Store)(nil)

// Store is a kvstore.Store on an etcd v3 client.
type Store struct {
	cli      *clientv3.Client
	timeout  time.Duration
	endpoint string // for messages

	// bg is cancelled by Close; registrations and watches run under it.
	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// New connects to the etcd endpoints in cfg. It does not wait for the
// server unless credentials are configured (etcd authenticates at connect
// time), so an agent can start while the store is down.
func New(cfg kvstore.Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = kvstore.DefaultTimeout
	}
	tlsCfg, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	endpoints := make([]string, len(cfg.Endpoints))
	for i, ep := range cfg.Endpoints {
		if tlsCfg != nil {
			endpoints[i] = "https://" + ep
		} else {
			endpoints[i] = "http://" + ep
		}
	}
	s := &Store{timeout: timeout, endpoint: "etcd at " + strings.Join(cfg.Endpoints, ",")}
	var dialOpts []grpc.DialOption
	if cfg.Dial != nil {
		dialOpts = append(dialOpts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return cfg.Dial(ctx, "tcp", addr)
		}))
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          timeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: timeout,
		Username:             cfg.Username,
		Password:             cfg.Password,
		TLS:                  tlsCfg,
		Logger:               zap.NewNop(),
		DialOptions:          dialOpts,
	})
	if err != nil {
		return nil, s.mapErr(err)
	}
	s.cli = cli
	s.bg, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Client exposes the underlying etcd client (for tests and tools).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Close stops watches and keep-alives and closes the client. Leases are
// not revoked: their keys expire with their TTL.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		s.stop()
		s.wg.Wait()
		err = s.cli.Close()
	})
	return err
}

// call bounds one request by the store's timeout.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// mapErr turns etcd and gRPC errors into kvstore sentinels with a short
// message. A cancellation by the caller is passed through untouched.
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
	switch rpctypes.Error(err) {
	case rpctypes.ErrAuthFailed, rpctypes.ErrPermissionDenied, rpctypes.ErrInvalidAuthToken,
		rpctypes.ErrUserEmpty, rpctypes.ErrAuthOldRevision:
		return fmt.Errorf("%w: %s: %s", kvstore.ErrPermission, s.endpoint, rpctypes.ErrorDesc(err))
	case rpctypes.ErrNoLeader, rpctypes.ErrNotCapable, rpctypes.ErrStopped, rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrLeaderChanged:
		return fmt.Errorf("%w: %s: %s", kvstore.ErrUnavailable, s.endpoint, rpctypes.ErrorDesc(err))
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
			return fmt.Errorf("%w: %s is not reachable", kvstore.ErrUnavailable, s.endpoint)
		case codes.Unauthenticated, codes.PermissionDenied:
			return fmt.Errorf("%w: %s: %s", kvstore.ErrPermission, s.endpoint, st.Message())
		}
	}
	return fmt.Errorf("%s: %w", s.endpoint, err)
}

func pair(kv *mvccpb.KeyValue) kvstore.KVPair {
	return kvstore.KVPair{Key: string(kv.Key), Value: kv.Value, Version: uint64(kv.ModRevision)}
}

// Get implements kvstore.Store.
func (s *Store) Get(ctx context.Context, key string) (kvstore.KVPair, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return kvstore.KVPair{}, s.mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return kvstore.KVPair{}, fmt.Errorf("%s: %w", key, kvstore.ErrKeyNotFound)
	}
	return pair(resp.Kvs[0]), nil
}

// Put implements kvstore.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Put(ctx, key, string(value))
	if err != nil {
		return 0, s.mapErr(err)
	}
	return uint64(resp.Header.Revision), nil
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
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Delete(ctx, key)
	if err != nil {
		return s.mapErr(err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("%s: %w", key, kvstore.ErrKeyNotFound)
	}
	return nil
}

// CompareAndDelete implements kvstore.Store.
func (s *Store) CompareAndDelete(ctx context.Context, key string, version uint64) error {
	_, err := s.txnOne(ctx, kvstore.Op{Kind: kvstore.OpCompareDelete, Key: key, Version: version})
	return err
}

// txnOne runs a single conditional op and unwraps the TxnError, whose
// index means nothing to a single-key caller.
func (s *Store) txnOne(ctx context.Context, op kvstore.Op) (uint64, error) {
	rev, err := s.txn(ctx, []kvstore.Op{op})
	if te := (*kvstore.TxnError)(nil); errors.As(err, &te) {
		return 0, fmt.Errorf("%s: %w", op.Key, te.Err)
	}
	return rev, err
}

// List implements kvstore.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]kvstore.KVPair, uint64, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, s.mapErr(err)
	}
	kvs := make([]kvstore.KVPair, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		kvs[i] = pair(kv)
	}
	return kvs, uint64(resp.Header.Revision), nil
}

// Txn implements kvstore.Store.
func (s *Store) Txn(ctx context.Context, ops ...kvstore.Op) error {
	_, err := s.txn(ctx, ops)
	return err
}

// txn turns ops into one etcd transaction: every condition in If, every
// write in Then, and reads of the conditioned keys in Else so a failure can
// name the op that did not hold.
func (s *Store) txn(ctx context.Context, ops []kvstore.Op) (uint64, error) {
	if err := kvstore.CheckOps(ops); err != nil {
		return 0, err
	}
	var cmps []clientv3.Cmp
	var writes, reads []clientv3.Op
	var checked []int // op index of each read in Else
	for i, op := range ops {
		switch op.Kind {
		case kvstore.OpCreate:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(op.Key), "=", 0))
			writes = append(writes, clientv3.OpPut(op.Key, string(op.Value)))
		case kvstore.OpPut:
			writes = append(writes, clientv3.OpPut(op.Key, string(op.Value)))
			continue
		case kvstore.OpSwap:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "=", int64(op.Version)))
			writes = append(writes, clientv3.OpPut(op.Key, string(op.Value)))
		case kvstore.OpDelete:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(op.Key), ">", 0))
			writes = append(writes, clientv3.OpDelete(op.Key))
		case kvstore.OpCompareDelete:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "=", int64(op.Version)))
			writes = append(writes, clientv3.OpDelete(op.Key))
		case kvstore.OpCheck:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(op.Key), "=", int64(op.Version)))
		default:
			return 0, fmt.Errorf("unknown transaction op kind %d", op.Kind)
		}
		reads = append(reads, clientv3.OpGet(op.Key))
		checked = append(checked, i)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	resp, err := s.cli.Txn(cctx).If(cmps...).Then(writes...).Else(reads...).Commit()
	if err != nil {
		return 0, s.mapErr(err)
	}
	if resp.Succeeded {
		return uint64(resp.Header.Revision), nil
	}
	for j, r := range resp.Responses {
		op := ops[checked[j]]
		kvs := r.GetResponseRange().GetKvs()
		var cur int64
		if len(kvs) > 0 {
			cur = kvs[0].ModRevision
		}
		if failed := conditionError(op, cur); failed != nil {
			return 0, &kvstore.TxnError{Index: checked[j], Key: op.Key, Err: failed}
		}
	}
	// The condition failed but the keys read back fine: a write raced in
	// between the transaction and the reads.
	return 0, &kvstore.TxnError{Index: checked[0], Key: ops[checked[0]].Key, Err: kvstore.ErrKeyModified}
}

// conditionError says why op's condition does not hold when the key is at
// version cur (0: absent), or nil if it holds.
func conditionError(op kvstore.Op, cur int64) error {
	switch op.Kind {
	case kvstore.OpCreate:
		if cur != 0 {
			return kvstore.ErrKeyExists
		}
	case kvstore.OpDelete:
		if cur == 0 {
			return kvstore.ErrKeyNotFound
		}
	default: // compared against a version
		if cur == 0 {
			return kvstore.ErrKeyNotFound
		}
		if uint64(cur) != op.Version {
			return kvstore.ErrKeyModified
		}
	}
	return nil
}
