package consul

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
)

// watchWait is how long one blocking query may wait on the server.
const watchWait = time.Minute

// Watch implements kvstore.Store with blocking queries on the prefix. Each
// answer is the full listing; the watch diffs it against the previous one
// and sends puts in ModifyIndex order, then deletes. Consul keeps no history
// of deleted keys, so a watch asked to resume from a version older than the
// prefix's current index starts with an EventReset.
func (s *Store) Watch(ctx context.Context, prefix string, version uint64) (<-chan kvstore.Event, error) {
	out := make(chan kvstore.Event)
	w := &watcher{s: s, prefix: prefix, out: out}
	// Take the first listing now, so that writes made after Watch
	// returns are seen as changes, not folded into a reset.
	q, qcancel := s.query(ctx)
	if pairs, meta, err := s.client.KV().List(prefix, q); err == nil {
		w.first, w.firstIndex = pairs, meta.LastIndex
	}
	qcancel()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.bg, cancel)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		defer cancel()
		defer close(out)
		w.run(ctx, version)
	}()
	return out, nil
}

type watcher struct {
	s      *Store
	prefix string
	out    chan<- kvstore.Event
	state  map[string]kvstore.KVPair // last listing, by key
	index  uint64                    // its X-Consul-Index

	first      api.KVPairs // listing taken by Watch, if it succeeded
	firstIndex uint64
}

func (w *watcher) send(ctx context.Context, ev kvstore.Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// list runs one (possibly blocking) listing, retrying through outages.
// After a failure it asks without blocking: a restarted server may have
// started its indexes again from below waitIndex, and a blocking query
// would then wait for its whole WaitTime.
func (w *watcher) list(ctx context.Context, waitIndex uint64) (api.KVPairs, uint64, bool) {
	retry := backoff.New(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: waitIndex, WaitTime: watchWait}).WithContext(ctx)
		pairs, meta, err := w.s.client.KV().List(w.prefix, q)
		if err == nil {
			return pairs, meta.LastIndex, true
		}
		waitIndex = 0
		retry.Wait(ctx)
	}
	return nil, 0, false
}

func (w *watcher) run(ctx context.Context, version uint64) {
	pairs, index, ok := w.first, w.firstIndex, w.firstIndex != 0
	if !ok {
		if pairs, index, ok = w.list(ctx, 0); !ok {
			return
		}
	}
	w.state = make(map[string]kvstore.KVPair, len(pairs))
	for _, kv := range toPairs(pairs) {
		w.state[kv.Key] = kv
	}
	w.index = max(index, 1)
	if version != 0 && index != version {
		snap := toPairs(pairs)
		if !w.send(ctx, kvstore.Event{Type: kvstore.EventReset, Version: index, Snapshot: snap}) {
			return
		}
	}
	for ctx.Err() == nil {
		pairs, index, ok := w.list(ctx, w.index)
		if !ok {
			return
		}
		if index == w.index {
			continue // the wait timed out with no change
		}
		if !w.apply(ctx, toPairs(pairs), index) {
			return
		}
		// An index that goes backwards means the server lost its state
		// (a restarted dev agent); follow it rather than block on a
		// future that will not come.
		w.index = max(index, 1)
	}
}

// apply diffs a new listing against the state and sends the changes.
func (w *watcher) apply(ctx context.Context, kvs []kvstore.KVPair, index uint64) bool {
	next := make(map[string]kvstore.KVPair, len(kvs))
	var puts []kvstore.KVPair
	for _, kv := range kvs {
		next[kv.Key] = kv
		if old, ok := w.state[kv.Key]; !ok || old.Version != kv.Version {
			puts = append(puts, kv)
		}
	}
	var deletes []string
	for k := range w.state {
		if _, ok := next[k]; !ok {
			deletes = append(deletes, k)
		}
	}
	w.state = next
	sort.Slice(puts, func(i, j int) bool { return puts[i].Version < puts[j].Version })
	sort.Strings(deletes)
	for _, kv := range puts {
		if !w.send(ctx, kvstore.Event{Type: kvstore.EventPut, Key: kv.Key, Value: kv.Value, Version: kv.Version}) {
			return false
		}
	}
	for _, k := range deletes {
		if !w.send(ctx, kvstore.Event{Type: kvstore.EventDelete, Key: k, Version: index}) {
			return false
		}
	}
	return true
}
