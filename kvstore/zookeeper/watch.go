package zookeeper

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/meshnet/meshnet/internal/backoff"
	"github.com/meshnet/meshnet/kvstore"
)

// Watch implements kvstore.Store on a mirror of its own (mirror.go): each
// time a notification comes, the watch settles the mirror again, diffs its
// picture against what it sent last, and sends the puts in mzxid order,
// then the deletes, which carry the picture's version. Successive writes
// to one key between two pictures arrive as one event with the latest
// value, as on Consul. After an outage or a lost session the mirror reads
// again what it may have missed, so nothing is lost.
//
// Resuming from a version: if no znode in the subtree has had a child
// created or deleted since then (every pzxid is older) and no key became a
// bare directory, the keys written since are exactly those with a newer
// mzxid, and they are sent as puts. Otherwise ZooKeeper, which keeps no
// history, cannot tell what was deleted, and the watch starts with an
// EventReset holding the picture.
func (s *Store) Watch(ctx context.Context, prefix string, version uint64) (<-chan kvstore.Event, error) {
	out := make(chan kvstore.Event)
	w := &watcher{mirror: newMirror(s, prefix), out: out}
	s.mu.Lock()
	s.mirrors[w.mirror] = struct{}{}
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.bg, cancel)
	forget := func() {
		s.mu.Lock()
		delete(s.mirrors, w.mirror)
		s.mu.Unlock()
		stop()
		cancel()
	}
	// Take the first picture now, so that writes made after Watch returns
	// are sent as changes, not folded into it. If the store does not
	// answer, the watch takes it when it is back.
	sctx, scancel := s.call(ctx)
	ready := w.settle(sctx) == nil
	scancel()
	if !s.goOwned(func() {
		defer forget()
		defer close(out)
		w.run(ctx, version, ready)
	}) {
		forget()
		return nil, fmt.Errorf("watching %s: %w: the client is closed", prefix, kvstore.ErrUnavailable)
	}
	return out, nil
}

// watcher is a mirror and what the consumer holds. Its goroutine owns the
// mirror (no other round runs on it), so it does not take mirror.mu.
type watcher struct {
	*mirror
	out  chan<- kvstore.Event
	sent map[string]kvstore.KVPair // by key
}

func (w *watcher) send(ctx context.Context, ev kvstore.Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *watcher) run(ctx context.Context, version uint64, ready bool) {
	if !ready && !w.settleRetrying(ctx) {
		return
	}
	if !w.start(ctx, version) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		if !w.settleRetrying(ctx) || !w.sendChanges(ctx) {
			return
		}
	}
}

// settleRetrying settles the mirror, retrying through outages until ctx
// is done.
func (w *watcher) settleRetrying(ctx context.Context) bool {
	retry := backoff.New(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		sctx, cancel := w.s.call(ctx)
		err := w.settle(sctx)
		cancel()
		if err == nil {
			return true
		}
		retry.Wait(ctx)
	}
	return false
}

// start sends what the consumer, holding the store as of version, needs
// to catch up with the first picture.
func (w *watcher) start(ctx context.Context, version uint64) bool {
	cur := w.pic.pairs()
	w.sent = make(map[string]kvstore.KVPair, len(cur))
	if version == 0 {
		for _, kv := range cur {
			w.sent[kv.Key] = kv
		}
		return true
	}
	if v := w.pic.version(); version > v || w.structureChangedSince(int64(version)) {
		for _, kv := range cur {
			w.sent[kv.Key] = kv
		}
		return w.send(ctx, kvstore.Event{Type: kvstore.EventReset, Version: v, Snapshot: cur})
	}
	for _, kv := range cur {
		if kv.Version <= version {
			w.sent[kv.Key] = kv
		}
	}
	return w.sendChanges(ctx)
}

// structureChangedSince says whether a key may have been deleted after
// version: a child created or deleted anywhere in the subtree, or a key
// turned into a bare directory.
func (w *watcher) structureChangedSince(version int64) bool {
	if w.pic.floor > version {
		return true
	}
	for _, n := range w.pic.nodes {
		if n.stat.Pzxid > version || n.cpzxid > version || (n.data == nil && n.stat.Mzxid > version) {
			return true
		}
	}
	return false
}

// sendChanges diffs the picture against what was sent: puts in version
// order, then deletes.
func (w *watcher) sendChanges(ctx context.Context) bool {
	cur := w.pic.pairs()
	next := make(map[string]kvstore.KVPair, len(cur))
	var puts []kvstore.KVPair
	for _, kv := range cur {
		next[kv.Key] = kv
		if old, ok := w.sent[kv.Key]; !ok || old.Version != kv.Version {
			puts = append(puts, kv)
		}
	}
	var deletes []string
	for k := range w.sent {
		if _, ok := next[k]; !ok {
			deletes = append(deletes, k)
		}
	}
	w.sent = next
	// Stable: keys written by one transaction share a version and stay
	// in key order.
	slices.SortStableFunc(puts, func(a, b kvstore.KVPair) int { return cmp.Compare(a.Version, b.Version) })
	slices.Sort(deletes)
	for _, kv := range puts {
		if !w.send(ctx, kvstore.Event{Type: kvstore.EventPut, Key: kv.Key, Value: kv.Value, Version: kv.Version}) {
			return false
		}
	}
	version := w.pic.version()
	for _, k := range deletes {
		if !w.send(ctx, kvstore.Event{Type: kvstore.EventDelete, Key: k, Version: version}) {
			return false
		}
	}
	return true
}
