package zookeeper_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/zookeeper"
	"github.com/meshnet/meshnet/testenv"
)

// A round of re-reads that fails after reading the new children of the
// root, before reading their subtrees, must not leave them out of the
// picture: the next List lists them.
func TestListAfterFailedRound(t *testing.T) {
	s, ctx := open(t), testCtx(t)
	prefix := "zktest/" + t.Name() + "/"
	check.Must(s.Put(ctx, prefix+"a/x", []byte("1")))(t)
	must2(t, s, prefix) // the mirror of prefix, watching
	check.Must(open(t).Put(ctx, prefix+"b/y", []byte("2")))(t)
	// Wait until the notification has come: the barrier of a plain read.
	check.Must(s.Get(ctx, prefix+"b/y"))(t)
	zookeeper.SetAfterRootRead(s, func() error { return errors.New("injected failure") })
	if _, _, err := s.List(ctx, prefix); err == nil {
		t.Fatal("the injected failure did not fail List")
	}
	zookeeper.SetAfterRootRead(s, nil)
	for range 2 {
		if kvs, _ := must2(t, s, prefix); fmt.Sprint(keysOf(kvs)) != fmt.Sprintf("[%sa/x %sb/y]", prefix, prefix) {
			t.Fatalf("List after a failed round = %v", keysOf(kvs))
		}
	}
}

// Watches that come and go, and List mirrors, share the store's watches:
// the client library's table of watchers does not grow with them.
func TestWatchersBounded(t *testing.T) {
	s, ctx := open(t), testCtx(t)
	prefix := "zktest/" + t.Name() + "/"
	const keys = 50
	for i := range keys {
		check.Must(s.Put(ctx, fmt.Sprintf("%sk%d", prefix, i), []byte("v")))(t)
	}
	cycle := func() {
		wctx, cancel := context.WithCancel(ctx)
		check.Must(s.Watch(wctx, prefix, 0))(t)
		cancel()
		must2(t, s, prefix)
	}
	cycle()
	first := zookeeper.LibraryWatchers(s)
	for range 50 {
		cycle()
	}
	// A data and a child watch per znode, and a few above.
	if n := zookeeper.LibraryWatchers(s); n != first || n > 2*keys+10 {
		t.Fatalf("%d watchers after one watch and list, %d after 51", first, n)
	}
	// A write sets the one watch it fired again, once.
	check.Must(s.Put(ctx, prefix+"k0", []byte("w")))(t)
	check.Eventually(t, 10*time.Second, check.Holds("the write to be listed", func() bool {
		kvs, _ := must2(t, s, prefix)
		return string(kvs[0].Value) == "w"
	}))
	if n := zookeeper.LibraryWatchers(s); n != first {
		t.Fatalf("%d watchers after a write, want %d", n, first)
	}
}

// Under writes that never pause, List answers (a busy server is not an
// unavailable one), a Watch keeps sending in version order, and a Watch
// resumed from a listing's version ends with the store's contents.
func TestListAndWatchUnderSteadyWrites(t *testing.T) {
	ctx := testCtx(t)
	cfg := server.Config()
	cfg.Timeout = 2 * time.Second // a List that cannot settle fails in time
	s := check.Must(zookeeper.New(cfg))(t)
	t.Cleanup(func() { s.Close() })
	prefix := "zktest/" + t.Name() + "/"
	check.Must(s.Put(ctx, prefix+"k0", []byte("x")))(t)
	live := check.Must(s.Watch(ctx, prefix, 0))(t)
	// Connected now: the library races with itself when a new client's
	// first answers set watches.
	observer := open(t)
	check.Must(observer.Get(ctx, prefix+"k0"))(t)

	var stop atomic.Bool
	var wg sync.WaitGroup
	const writers = 32
	for w := range writers {
		c := open(t)
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if _, err := c.Put(ctx, fmt.Sprintf("%sk%d", prefix, w), []byte(fmt.Sprint(i))); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		})
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	time.Sleep(300 * time.Millisecond)

	// The live watch sends the writes while they go on.
	seen := map[string]bool{}
	var last uint64
	for len(seen) < writers {
		select {
		case ev := <-live:
			if ev.Version < last {
				t.Fatalf("%v %s at version %d after %d", ev.Type, ev.Key, ev.Version, last)
			}
			last = ev.Version
			seen[ev.Key] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("the watch went silent under load after %d keys", len(seen))
		}
	}

	var kvs []kvstore.KVPair
	var rev uint64
	for i := range 5 {
		var err error
		if kvs, rev, err = s.List(ctx, prefix); err != nil {
			t.Fatalf("List %d under load: %v", i, err)
		}
	}
	got := map[string]string{}
	for _, kv := range kvs {
		got[kv.Key] = string(kv.Value)
	}
	resumed := check.Must(s.Watch(ctx, prefix, rev))(t)
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	want := map[string]string{}
	for _, kv := range must2Of(t, observer, prefix) {
		want[kv.Key] = string(kv.Value)
	}
	deadline := time.After(15 * time.Second)
	for !maps.Equal(got, want) {
		select {
		case ev := <-resumed:
			switch ev.Type {
			case kvstore.EventPut:
				got[ev.Key] = string(ev.Value)
			case kvstore.EventDelete:
				delete(got, ev.Key)
			case kvstore.EventReset:
				got = map[string]string{}
				for _, kv := range ev.Snapshot {
					got[kv.Key] = string(kv.Value)
				}
			}
		case <-deadline:
			t.Fatalf("listing and resumed watch ended at %v, the store holds %v", got, want)
		}
	}
}

func must2Of(t *testing.T, s kvstore.Store, prefix string) []kvstore.KVPair {
	kvs, _ := must2(t, s, prefix)
	return kvs
}

// A watch from now whose first picture cannot be taken (the server is
// down) takes it when the server is back and starts with a reset to it:
// writes made meanwhile are in the reset, not lost.
func TestWatchFromNowTakenLate(t *testing.T) {
	ctx := testCtx(t)
	srv, err := testenv.StartZooKeeper(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg := srv.Config()
	cfg.Timeout = 500 * time.Millisecond
	s := check.Must(zookeeper.New(cfg))(t)
	t.Cleanup(func() { s.Close() })
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	ch := check.Must(s.Watch(ctx, "w/", 0))(t)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w := check.Must(zookeeper.New(srv.Config()))(t)
	t.Cleanup(func() { w.Close() })
	check.Must(w.Put(ctx, "w/k", []byte("v")))(t)
	select {
	case ev := <-ch:
		if ev.Type != kvstore.EventReset {
			t.Fatalf("first event %v %s, want a reset", ev.Type, ev.Key)
		}
		if len(ev.Snapshot) == 1 {
			return // the write came before the picture
		}
		if ev = <-ch; ev.Type != kvstore.EventPut || ev.Key != "w/k" {
			t.Fatalf("after an empty reset: %v %s, want the put", ev.Type, ev.Key)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no event")
	}
}

// Single-key calls are checked in their own words.
func TestSingleKeyCallErrors(t *testing.T) {
	s, ctx := open(t), testCtx(t)
	for _, err := range []error{
		func() error { _, err := s.Put(ctx, "", []byte("v")); return err }(),
		func() error { _, err := s.CompareAndSwap(ctx, "k", []byte("v"), 0); return err }(),
		s.Delete(ctx, ""),
	} {
		if err == nil || strings.Contains(err.Error(), "transaction") {
			t.Errorf("got %v, want an error about the call", err)
		}
	}
}
