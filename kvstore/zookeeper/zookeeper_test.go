package zookeeper_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/kvstore/zookeeper"
	"github.com/meshnet/meshnet/testenv"
)

// These tests cover what is particular to ZooKeeper: the tree behind the
// flat keys, sessions, and watches under load. The shared conformance
// suite (kvstore/conformance_test.go) covers the rest.

var server *testenv.ZooKeeperServer

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zk-test-")
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		server, err = testenv.StartZooKeeper(ctx, dir)
		cancel()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting ZooKeeper:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	server.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// open returns a raw client (no prefix: keys are absolute) closed at the
// end of the test.
func open(t *testing.T) *zookeeper.Store {
	t.Helper()
	s, err := zookeeper.New(server.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// exists says whether the znode is there, directory or key.
func exists(t *testing.T, s *zookeeper.Store, path string) bool {
	t.Helper()
	ok, _, err := s.Conn().Exists(path)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// A key is a znode with data; its parents are directories, created on
// demand and removed with their last key. A key can be the directory of
// longer keys too.
func TestTree(t *testing.T) {
	s, ctx := open(t), testCtx(t)
	root := "zktest/" + t.Name()
	check.Must(s.Put(ctx, root+"/subnets/10.1.0.0/24", []byte("n1")))(t)
	if !exists(t, s, "/zktest/TestTree/subnets/10.1.0.0/24") {
		t.Fatal("a key is not the znode of its path")
	}
	if _, err := s.Get(ctx, root+"/subnets/10.1.0.0"); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("a directory reads as a key: %v", err)
	}

	// "a" is a key and the directory of "a/b".
	check.Must(s.Put(ctx, root+"/a", []byte("A")))(t)
	check.Must(s.Create(ctx, root+"/a/b", nil))(t)
	kvs := check.Must(listOf(ctx, s, root+"/"))(t)
	if fmt.Sprint(keysOf(kvs)) != "[a a/b subnets/10.1.0.0/24]" {
		t.Fatalf("List = %v", keysOf(kvs))
	}
	if kv := check.Must(s.Get(ctx, root+"/a/b"))(t); kv.Value == nil || len(kv.Value) != 0 {
		t.Fatalf("an empty value reads back as %#v", kv.Value)
	}
	// Deleting "a" leaves its directory for "a/b"; it can be created again.
	if err := s.Delete(ctx, root+"/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, root+"/a"); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
	check.Must(s.Get(ctx, root+"/a/b"))(t)
	check.Must(s.Create(ctx, root+"/a", []byte("again")))(t)
	if err := s.Delete(ctx, root+"/a"); err != nil {
		t.Fatal(err)
	}

	// The last keys gone, so are their directories.
	for _, k := range []string{root + "/a/b", root + "/subnets/10.1.0.0/24"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if exists(t, s, "/zktest/TestTree") {
		t.Error("empty directories were left behind")
	}
}

func listOf(ctx context.Context, s kvstore.Store, prefix string) ([]kvstore.KVPair, error) {
	kvs, _, err := s.List(ctx, prefix)
	for i := range kvs {
		kvs[i].Key = kvs[i].Key[len(prefix):]
	}
	return kvs, err
}

func keysOf(kvs []kvstore.KVPair) []string {
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	return keys
}

// Close leaves registrations to expire with their TTL, as a crash would;
// a new holder takes the key over at once.
func TestCloseLeavesRegistrations(t *testing.T) {
	ctx, observer := testCtx(t), open(t)
	key := "zktest/" + t.Name() + "/nodes/n1"
	holder := check.Must(zookeeper.New(server.Config()))(t)
	check.Must(holder.Register(ctx, key, []byte("old"), 2*time.Second))(t)
	holder.Close()
	if kv, err := observer.Get(ctx, key); err != nil || string(kv.Value) != "old" {
		t.Fatalf("right after Close: %q, %v; want the key until its TTL", kv.Value, err)
	}
	// A restarted holder replaces it without waiting.
	again := open(t)
	reg := check.Must(again.Register(ctx, key, []byte("new"), 2*time.Second))(t)
	if kv := check.Must(observer.Get(ctx, key))(t); string(kv.Value) != "new" {
		t.Fatalf("after the new registration: %q", kv.Value)
	}
	// The old session's expiry does not take the new znode.
	time.Sleep(4 * time.Second)
	if kv, err := observer.Get(ctx, key); err != nil || string(kv.Value) != "new" {
		t.Fatalf("after the old session expired: %q, %v", kv.Value, err)
	}
	if err := reg.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := observer.Get(ctx, key); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("after Revoke: %v", err)
	}
}

// A registration whose key someone deletes puts it back.
func TestRegistrationRecreated(t *testing.T) {
	ctx, s, observer := testCtx(t), open(t), open(t)
	key := "zktest/" + t.Name() + "/nodes/n1"
	check.Must(s.Register(ctx, key, []byte("v"), 2*time.Second))(t)
	if err := observer.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := observer.Get(ctx, key); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleted registration did not come back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Many writers at once, puts and deletes on keys of several directories: a
// watcher sees versions that never go back and ends with the store's
// contents, and a watch on a prefix that does not exist yet sees it come.
func TestWatchConcurrentWriters(t *testing.T) {
	ctx, s := testCtx(t), open(t)
	prefix := "zktest/" + t.Name() + "/"
	ch := check.Must(s.Watch(ctx, prefix, 0))(t)
	const writers, writes = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		c := open(t)
		wg.Go(func() {
			for i := range writes {
				key := fmt.Sprintf("%sd%d/k%d", prefix, i%3, (w*writes+i)%25)
				var err error
				if i%4 == 3 {
					err = c.Delete(ctx, key)
					if errors.Is(err, kvstore.ErrKeyNotFound) {
						err = nil
					}
				} else {
					_, err = c.Put(ctx, key, []byte(strconv.Itoa(w*writes+i)))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := map[string]string{}
	kvs, _ := must2(t, s, prefix)
	for _, kv := range kvs {
		want[kv.Key] = string(kv.Value)
	}
	got := map[string]string{}
	var last uint64
	deadline := time.After(30 * time.Second)
	for !maps.Equal(got, want) {
		select {
		case ev := <-ch:
			if ev.Version < last {
				t.Fatalf("%v %s at version %d after %d", ev.Type, ev.Key, ev.Version, last)
			}
			last = ev.Version
			switch ev.Type {
			case kvstore.EventPut:
				got[ev.Key] = string(ev.Value)
			case kvstore.EventDelete:
				delete(got, ev.Key)
			default:
				t.Fatalf("unexpected %v", ev.Type)
			}
		case <-deadline:
			t.Fatalf("the watcher's view %v never matched the store %v", got, want)
		}
	}
}

// A resumed watch replays writes as puts when no key was created or
// deleted meanwhile, and resets otherwise.
func TestWatchResume(t *testing.T) {
	ctx, s := testCtx(t), open(t)
	prefix := "zktest/" + t.Name() + "/"
	check.Must(s.Put(ctx, prefix+"a", []byte("1")))(t)
	check.Must(s.Put(ctx, prefix+"b", []byte("1")))(t)
	_, rev := must2(t, s, prefix)
	check.Must(s.Put(ctx, prefix+"b", []byte("2")))(t)
	ch := check.Must(s.Watch(ctx, prefix, rev))(t)
	if ev := <-ch; ev.Type != kvstore.EventPut || ev.Key != prefix+"b" || string(ev.Value) != "2" {
		t.Fatalf("writes only: got %v %s=%q, want a put of b", ev.Type, ev.Key, ev.Value)
	}
	_, rev = must2(t, s, prefix)
	if err := s.Delete(ctx, prefix+"a"); err != nil {
		t.Fatal(err)
	}
	ch = check.Must(s.Watch(ctx, prefix, rev))(t)
	if ev := <-ch; ev.Type != kvstore.EventReset || len(ev.Snapshot) != 1 || ev.Snapshot[0].Key != prefix+"b" {
		t.Fatalf("after a delete: got %v %v, want a reset to b", ev.Type, ev.Snapshot)
	}
}

func must2(t *testing.T, s kvstore.Store, prefix string) ([]kvstore.KVPair, uint64) {
	t.Helper()
	kvs, rev, err := s.List(testCtx(t), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return kvs, rev
}

// TLS: a client with the CA works; one without TLS fails in time.
func TestTLS(t *testing.T) {
	ctx := testCtx(t)
	srv, err := testenv.StartZooKeeperTLS(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg := srv.Config()
	s := check.Must(backends.Open(cfg))(t)
	defer s.Close()
	check.Must(s.Put(ctx, "k", []byte("over TLS")))(t)
	if kv := check.Must(s.Get(ctx, "k"))(t); string(kv.Value) != "over TLS" {
		t.Fatalf("read back %q", kv.Value)
	}
	cfg.CAFile, cfg.Timeout = "", time.Second
	plain := check.Must(backends.Open(cfg))(t)
	defer plain.Close()
	if err := kvstore.Ping(ctx, plain); !errors.Is(err, kvstore.ErrUnavailable) {
		t.Fatalf("plain client of a TLS server: %v, want ErrUnavailable", err)
	}
}
