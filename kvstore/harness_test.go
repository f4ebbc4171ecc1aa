package kvstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv"
)

// startServers starts a real server per backend (see testenv.StartStores).
func startServers(t testing.TB) []testenv.StoreServer { return testenv.StartStores(t, "") }

// open returns a client of srv rooted at a prefix of its own.
func open(t testing.TB, srv testenv.StoreServer, prefix string) kvstore.Store {
	return testenv.OpenStore(t, srv, prefix)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func wantErr(t testing.TB, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got error %v, want %v", err, sentinel)
	}
}

// nextEvent reads one event or fails after a generous deadline.
func nextEvent(t testing.TB, ch <-chan kvstore.Event) kvstore.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for a watch event")
	}
	panic("unreachable")
}

// view is a consumer's picture of a prefix built from watch events.
type view map[string]string

func (v view) apply(ev kvstore.Event) {
	switch ev.Type {
	case kvstore.EventPut:
		v[ev.Key] = string(ev.Value)
	case kvstore.EventDelete:
		delete(v, ev.Key)
	case kvstore.EventReset:
		clear(v)
		for _, kv := range ev.Snapshot {
			v[kv.Key] = string(kv.Value)
		}
	}
}

func listView(t testing.TB, s kvstore.Store, prefix string) view {
	t.Helper()
	kvs, _ := must2(t, s, prefix)
	v := view{}
	for _, kv := range kvs {
		v[kv.Key] = string(kv.Value)
	}
	return v
}

func must2(t testing.TB, s kvstore.Store, prefix string) ([]kvstore.KVPair, uint64) {
	t.Helper()
	kvs, rev, err := s.List(testCtx(t), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return kvs, rev
}
