package zookeeper

import (
	"bytes"
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
//
// Under writes that never pause the mirror may not settle (see settle):
// the watch then sends what the picture holds up to the zxid through
// which it is complete, and the rest after the next round.
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
	// answer, the watch takes it when it is back, and then, if it was
	// from now, starts with a reset to it: the writes made meanwhile are
	// in it.
	sctx, scancel := s.call(ctx)
	through, err := w.settle(sctx)
	scancel()
	ready := err == nil
	if !s.goOwned(func() {
		defer forget()
		defer close(out)
		w.run(ctx, version, ready, through)
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

func (w *watcher) run(ctx context.Context, version uint64, ready bool, through uint64) {
	if !ready {
		var ok bool
		if through, ok = w.settleRetrying(ctx); !ok {
			return
		}
	}
	if !w.start(ctx, version, through, !ready) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		through, ok := w.settleRetrying(ctx)
		if !ok || !w.sendChanges(ctx, through) {
			return
		}
	}
}

// settleRetrying settles the mirror, retrying through outages until ctx
// is done, and returns settle's through.
func (w *watcher) settleRetrying(ctx context.Context) (uint64, bool) {
	retry := backoff.New(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		sctx, cancel := w.s.call(ctx)
		through, err := w.settle(sctx)
		cancel()
		if err == nil {
			return through, true
		}
		retry.Wait(ctx)
	}
	return 0, false
}

// start sends what the consumer, holding the store as of version, needs
// to catch up with the first picture, which holds every change up to
// through. A watch from now whose first picture was taken late starts
// with a reset to it.
func (w *watcher) start(ctx context.Context, version, through uint64, late bool) bool {
	cur := w.pic.pairs(false)
	w.sent = make(map[string]kvstore.KVPair, len(cur))
	if version == 0 && !late {
		for _, kv := range cur {
			w.sent[kv.Key] = kv
		}
		return true
	}
	if version == 0 || version > w.pic.version() || w.structureChangedSince(int64(version)) {
		snap := make([]kvstore.KVPair, len(cur))
		for i, kv := range cur {
			w.sent[kv.Key] = kv
			snap[i] = kvstore.KVPair{Key: kv.Key, Value: bytes.Clone(kv.Value), Version: kv.Version}
		}
		return w.send(ctx, kvstore.Event{Type: kvstore.EventReset, Version: through, Snapshot: snap})
	}
	for _, kv := range cur {
		if kv.Version <= version {
			w.sent[kv.Key] = kv
		}
	}
	return w.sendChanges(ctx, through)
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
// order, then deletes, which carry through. Keys written after through
// wait for a later picture, since one written before it may still be
// missing from this one.
func (w *watcher) sendChanges(ctx context.Context, through uint64) bool {
	cur := w.pic.pairs(false)
	present := make(map[string]bool, len(cur))
	var puts []kvstore.KVPair
	for _, kv := range cur {
		present[kv.Key] = true
		if old, ok := w.sent[kv.Key]; (!ok || old.Version != kv.Version) && kv.Version <= through {
			puts = append(puts, kv)
		}
	}
	var deletes []string
	for k := range w.sent {
		if !present[k] {
			deletes = append(deletes, k)
		}
	}
	// Stable: keys written by one transaction share a version and stay
	// in key order.
	slices.SortStableFunc(puts, func(a, b kvstore.KVPair) int { return cmp.Compare(a.Version, b.Version) })
	slices.Sort(deletes)
	for _, kv := range puts {
		w.sent[kv.Key] = kv
		if !w.send(ctx, kvstore.Event{Type: kvstore.EventPut, Key: kv.Key, Value: bytes.Clone(kv.Value), Version: kv.Version}) {
			return false
		}
	}
	for _, k := range deletes {
		delete(w.sent, k)
		if !w.send(ctx, kvstore.Event{Type: kvstore.EventDelete, Key: k, Version: through}) {
			return false
		}
	}
	return true
}
