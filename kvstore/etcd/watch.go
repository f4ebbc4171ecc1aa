package etcd

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
)

// Watch implements kvstore.Store on etcd's watch stream, which replays
// history exactly from a revision. The loop re-opens the stream after
// errors, from the last revision it delivered, so an outage loses nothing;
// if that revision has been compacted it sends an EventReset built from a
// fresh listing and continues from there.
func (s *Store) Watch(ctx context.Context, prefix string, version uint64) (<-chan kvstore.Event, error) {
	out := make(chan kvstore.Event)
	ctx, cancel := mergeDone(ctx, s.bg)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		defer close(out)
		s.watchLoop(ctx, prefix, version, out)
	}()
	return out, nil
}

func (s *Store) watchLoop(ctx context.Context, prefix string, rev uint64, out chan<- kvstore.Event) {
	send := func(ev kvstore.Event) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	retry := backoff.New(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCreatedNotify(), clientv3.WithProgressNotify()}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(int64(rev)+1))
		}
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range s.cli.Watch(wctx, prefix, opts...) {
			if resp.CompactRevision != 0 {
				kvs, lrev, ok := s.listUntil(ctx, prefix)
				if !ok || !send(kvstore.Event{Type: kvstore.EventReset, Version: lrev, Snapshot: kvs}) {
					wcancel()
					return
				}
				rev = lrev
				break
			}
			if resp.Err() != nil {
				break
			}
			retry.Reset()
			if rev == 0 && (resp.Created || resp.IsProgressNotify()) {
				// Watching "from now": pin now, so a re-opened stream
				// resumes here rather than at a later "now".
				rev = uint64(resp.Header.Revision)
			}
			for _, ev := range resp.Events {
				e := kvstore.Event{Key: string(ev.Kv.Key), Version: uint64(ev.Kv.ModRevision)}
				if ev.Type == clientv3.EventTypeDelete {
					e.Type = kvstore.EventDelete
				} else {
					e.Type, e.Value = kvstore.EventPut, ev.Kv.Value
				}
				if !send(e) {
					wcancel()
					return
				}
				rev = e.Version
			}
		}
		wcancel()
		retry.Wait(ctx)
	}
}

// listUntil lists prefix, retrying through an outage until ctx is done.
func (s *Store) listUntil(ctx context.Context, prefix string) ([]kvstore.KVPair, uint64, bool) {
	b := backoff.New(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		kvs, rev, err := s.List(ctx, prefix)
		if err == nil {
			return kvs, rev, true
		}
		b.Wait(ctx)
	}
	return nil, 0, false
}

// mergeDone returns a context that is done when either a or b is.
func mergeDone(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}
