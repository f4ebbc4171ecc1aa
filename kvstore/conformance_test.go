package kvstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv"
)

// TestConformance runs one suite against every backend, each on a real
// server: an embedded etcd, an etcd server process, Consul and ZooKeeper.
func TestConformance(t *testing.T) {
	for _, srv := range startServers(t) {
		t.Run(srv.Name(), func(t *testing.T) {
			t.Parallel()
			for _, c := range conformanceCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, srv) })
			}
			// Last: they change server-wide settings, or stop and
			// restart the server.
			t.Run("Credentials", func(t *testing.T) { testCredentials(t, srv) })
			t.Run("Outage", func(t *testing.T) { testOutage(t, srv) })
		})
	}
}

var conformanceCases = []struct {
	name string
	run  func(*testing.T, testenv.StoreServer)
}{
	{"GetPutDelete", testGetPutDelete},
	{"Create", testCreate},
	{"CompareAndSwap", testCompareAndSwap},
	{"CompareAndDelete", testCompareAndDelete},
	{"List", testList},
	{"PrefixIsolation", testPrefixIsolation},
	{"Txn", testTxn},
	{"TxnNested", testTxnNested},
	{"ConcurrentCAS", testConcurrentCAS},
	{"ConcurrentCreate", testConcurrentCreate},
	{"WatchOrder", testWatchOrder},
	{"WatchResume", testWatchResume},
	{"Registration", testRegistration},
	{"RegistrationExpires", testRegistrationExpires},
}

func testGetPutDelete(t *testing.T, srv testenv.StoreServer) {
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	_, err := s.Get(ctx, "k")
	wantErr(t, err, kvstore.ErrKeyNotFound)
	v1 := check.Must(s.Put(ctx, "k", []byte("one")))(t)
	kv := check.Must(s.Get(ctx, "k"))(t)
	if kv.Key != "k" || string(kv.Value) != "one" || kv.Version != v1 {
		t.Fatalf("Get = %+v, want k=one at %d", kv, v1)
	}
	v2 := check.Must(s.Put(ctx, "k", []byte("two")))(t)
	if v2 <= v1 {
		t.Fatalf("version went from %d to %d", v1, v2)
	}
	if kv := check.Must(s.Get(ctx, "k"))(t); string(kv.Value) != "two" || kv.Version != v2 {
		t.Fatalf("Get = %+v, want two at %d", kv, v2)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "k")
	wantErr(t, err, kvstore.ErrKeyNotFound)
	wantErr(t, s.Delete(ctx, "k"), kvstore.ErrKeyNotFound)
	// Binary values survive untouched.
	bin := []byte{0, 1, 2, 0xff, '\n'}
	check.Must(s.Put(ctx, "bin", bin))(t)
	if kv := check.Must(s.Get(ctx, "bin"))(t); !bytes.Equal(kv.Value, bin) {
		t.Fatalf("binary value came back as %v", kv.Value)
	}
}

func testCreate(t *testing.T, srv testenv.StoreServer) {
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	v := check.Must(s.Create(ctx, "k", []byte("first")))(t)
	_, err := s.Create(ctx, "k", []byte("second"))
	wantErr(t, err, kvstore.ErrKeyExists)
	if kv := check.Must(s.Get(ctx, "k"))(t); string(kv.Value) != "first" || kv.Version != v {
		t.Fatalf("after a refused create: %+v", kv)
	}
	// A deleted key can be created again.
	check.OK(t, s.Delete(ctx, "k"))
	check.Must(s.Create(ctx, "k", []byte("again")))(t)
}

func testCompareAndSwap(t *testing.T, srv testenv.StoreServer) {
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	v1 := check.Must(s.Create(ctx, "k", []byte("a")))(t)
	v2 := check.Must(s.CompareAndSwap(ctx, "k", []byte("b"), v1))(t)
	_, err := s.CompareAndSwap(ctx, "k", []byte("stale"), v1)
	wantErr(t, err, kvstore.ErrKeyModified)
	if kv := check.Must(s.Get(ctx, "k"))(t); string(kv.Value) != "b" || kv.Version != v2 {
		t.Fatalf("after a stale CAS: %+v", kv)
	}
	_, err = s.CompareAndSwap(ctx, "missing", []byte("x"), v2)
	wantErr(t, err, kvstore.ErrKeyNotFound)
	if _, err := s.CompareAndSwap(ctx, "k", []byte("x"), 0); err == nil {
		t.Fatal("CAS against version 0 succeeded")
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, kvstore.ErrKeyNotFound) {
		t.Fatalf("a failed CAS created the key: %v", err)
	}
}

func testCompareAndDelete(t *testing.T, srv testenv.StoreServer) {
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	v1 := check.Must(s.Create(ctx, "k", []byte("a")))(t)
	check.Must(s.Put(ctx, "k", []byte("b")))(t)
	wantErr(t, s.CompareAndDelete(ctx, "k", v1), kvstore.ErrKeyModified)
	kv := check.Must(s.Get(ctx, "k"))(t)
	check.OK(t, s.CompareAndDelete(ctx, "k", kv.Version))
	wantErr(t, s.CompareAndDelete(ctx, "k", kv.Version), kvstore.ErrKeyNotFound)
}

func testList(t *testing.T, srv testenv.StoreServer) {
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	for _, k := range []string{"a/3", "a/1", "a/2", "ab/1", "b"} {
		check.Must(s.Put(ctx, k, []byte(k)))(t)
	}
	kvs, rev := must2(t, s, "a/")
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
		if string(kv.Value) != kv.Key {
			t.Errorf("%s = %q", kv.Key, kv.Value)
		}
		if kv.Version > rev {
			t.Errorf("List version %d is older than %s's version %d", rev, kv.Key, kv.Version)
		}
	}
	if fmt.Sprint(keys) != "[a/1 a/2 a/3]" {
		t.Fatalf("List(a/) = %v", keys)
	}
	if kvs, _ := must2(t, s, "none/"); len(kvs) != 0 {
		t.Fatalf("List(none/) = %v", kvs)
	}
	if kvs, _ := must2(t, s, ""); len(kvs) != 5 {
		t.Fatalf("List of the whole prefix has %d keys, want 5", len(kvs))
	}
}

func testPrefixIsolation(t *testing.T, srv testenv.StoreServer) {
	a, b := open(t, srv, t.Name()+"/a"), open(t, srv, t.Name()+"/b")
	raw := open(t, srv, t.Name())
	ctx := testCtx(t)
	check.Must(a.Put(ctx, "k", []byte("in a")))(t)
	_, err := b.Get(ctx, "k")
	wantErr(t, err, kvstore.ErrKeyNotFound)
	if kv := check.Must(raw.Get(ctx, "a/k"))(t); string(kv.Value) != "in a" {
		t.Fatalf("raw view of a/k = %q", kv.Value)
	}
}

func testTxn(t *testing.T, srv testenv.StoreServer) {
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	check.Must(s.Put(ctx, "names/taken", []byte("x")))(t)

	// A network record and its name index go together or not at all.
	err := s.Txn(ctx,
		kvstore.Op{Kind: kvstore.OpCreate, Key: "networks/n1", Value: []byte("net")},
		kvstore.Op{Kind: kvstore.OpCreate, Key: "names/taken", Value: []byte("n1")})
	var te *kvstore.TxnError
	if !errors.As(err, &te) || te.Index != 1 || te.Key != "names/taken" || !errors.Is(err, kvstore.ErrKeyExists) {
		t.Fatalf("conflicting txn: %v", err)
	}
	_, err = s.Get(ctx, "networks/n1")
	wantErr(t, err, kvstore.ErrKeyNotFound)

	check.OK(t, s.Txn(ctx,
		kvstore.Op{Kind: kvstore.OpCreate, Key: "networks/n1", Value: []byte("net")},
		kvstore.Op{Kind: kvstore.OpCreate, Key: "names/free", Value: []byte("n1")}))
	n1 := check.Must(s.Get(ctx, "networks/n1"))(t)
	free := check.Must(s.Get(ctx, "names/free"))(t)
	if n1.Version != free.Version {
		t.Fatalf("keys of one txn have versions %d and %d", n1.Version, free.Version)
	}

	// Every op kind, conditions holding.
	check.OK(t, s.Txn(ctx,
		kvstore.Op{Kind: kvstore.OpSwap, Key: "networks/n1", Value: []byte("net2"), Version: n1.Version},
		kvstore.Op{Kind: kvstore.OpCompareDelete, Key: "names/free", Version: free.Version},
		kvstore.Op{Kind: kvstore.OpDelete, Key: "names/taken"},
		kvstore.Op{Kind: kvstore.OpPut, Key: "plain", Value: []byte("p")}))
	if got := listView(t, s, ""); !maps.Equal(got, view{"networks/n1": "net2", "plain": "p"}) {
		t.Fatalf("after the txn: %v", got)
	}

	// A failed check or a missing key rolls everything back.
	cur := check.Must(s.Get(ctx, "networks/n1"))(t)
	for i, ops := range [][]kvstore.Op{
		{{Kind: kvstore.OpPut, Key: "x", Value: []byte("1")}, {Kind: kvstore.OpCheck, Key: "networks/n1", Version: n1.Version}},
		{{Kind: kvstore.OpPut, Key: "x", Value: []byte("1")}, {Kind: kvstore.OpDelete, Key: "gone"}},
		{{Kind: kvstore.OpPut, Key: "x", Value: []byte("1")}, {Kind: kvstore.OpSwap, Key: "networks/n1", Value: []byte("y"), Version: n1.Version}},
	} {
		if err := s.Txn(ctx, ops...); !errors.As(err, &te) || te.Index != 1 {
			t.Fatalf("case %d: got %v, want a TxnError at op 1", i, err)
		}
	}
	_, err = s.Get(ctx, "x")
	wantErr(t, err, kvstore.ErrKeyNotFound)
	check.OK(t, s.Txn(ctx, kvstore.Op{Kind: kvstore.OpCheck, Key: "networks/n1", Version: cur.Version},
		kvstore.Op{Kind: kvstore.OpPut, Key: "x", Value: []byte("1")}))

	// Malformed transactions are refused before reaching the server.
	for _, ops := range [][]kvstore.Op{
		nil,
		{{Kind: kvstore.OpPut, Key: "a"}, {Kind: kvstore.OpPut, Key: "a"}},
		{{Kind: kvstore.OpSwap, Key: "a"}},
	} {
		if err := s.Txn(ctx, ops...); err == nil {
			t.Fatalf("malformed txn %v accepted", ops)
		}
	}
}

// testTxnNested: one transaction may write a key and a key under it, in
// either order, and delete a key while creating one under it, as in a
// flat key space. (ZooKeeper, whose keys are a tree, must plan these.)
func testTxnNested(t *testing.T, srv testenv.StoreServer) {
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	check.Must(s.Put(ctx, "d", []byte("old")))(t)
	for i, ops := range [][]kvstore.Op{
		{{Kind: kvstore.OpCreate, Key: "a", Value: []byte("1")}, {Kind: kvstore.OpCreate, Key: "a/b", Value: []byte("2")}},
		{{Kind: kvstore.OpCreate, Key: "c/d/e", Value: []byte("3")}, {Kind: kvstore.OpCreate, Key: "c", Value: []byte("4")}},
		{{Kind: kvstore.OpPut, Key: "x", Value: []byte("5")}, {Kind: kvstore.OpPut, Key: "x/y", Value: []byte("6")}},
		{{Kind: kvstore.OpDelete, Key: "d"}, {Kind: kvstore.OpCreate, Key: "d/e/f", Value: []byte("7")}},
	} {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := s.Txn(tctx, ops...)
		cancel()
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
	}
	want := view{"a": "1", "a/b": "2", "c": "4", "c/d/e": "3", "x": "5", "x/y": "6", "d/e/f": "7"}
	if got := listView(t, s, ""); !maps.Equal(got, want) {
		t.Fatalf("after the transactions: %v, want %v", got, want)
	}
	_, err := s.Get(ctx, "d")
	wantErr(t, err, kvstore.ErrKeyNotFound)
	// And the other way round: delete a key and the key under it at once.
	check.OK(t, s.Txn(ctx, kvstore.Op{Kind: kvstore.OpDelete, Key: "x"}, kvstore.Op{Kind: kvstore.OpDelete, Key: "x/y"}))
	check.OK(t, s.Txn(ctx, kvstore.Op{Kind: kvstore.OpDelete, Key: "c/d/e"}, kvstore.Op{Kind: kvstore.OpDelete, Key: "c"}))
	want = view{"a": "1", "a/b": "2", "d/e/f": "7"}
	if got := listView(t, s, ""); !maps.Equal(got, want) {
		t.Fatalf("after the deletes: %v, want %v", got, want)
	}
}

// testConcurrentCAS has many goroutines, each with its own client, race
// on one key in rounds: every round all read the same version, then all
// try to swap; exactly one wins. Then they increment a counter with
// read-CAS-retry loops: no update may be lost.
func testConcurrentCAS(t *testing.T, srv testenv.StoreServer) {
	const workers, rounds, incs = 8, 10, 10
	ctx := testCtx(t)
	clients := make([]kvstore.Store, workers)
	for i := range clients {
		clients[i] = open(t, srv, t.Name())
	}
	check.Must(clients[0].Put(ctx, "round", []byte("0")))(t)
	for r := range rounds {
		kv := check.Must(clients[0].Get(ctx, "round"))(t)
		var winners, modified atomic.Int32
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() {
				// Values differ from the current one: Consul turns a write
				// of the same value into a no-op that keeps the version.
				val := fmt.Sprintf("round %d worker %d", r, i)
				_, err := c.CompareAndSwap(ctx, "round", []byte(val), kv.Version)
				switch {
				case err == nil:
					winners.Add(1)

				case errors.Is(err, kvstore.ErrKeyModified):
					modified.Add(1)

				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if winners.Load() != 1 || modified.Load() != workers-1 {
			t.Fatalf("round %d: %d winners, %d losers", r, winners.Load(), modified.Load())
		}
	}

	check.Must(clients[0].Put(ctx, "counter", []byte("0")))(t)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for range incs {
				for {
					kv, err := c.Get(ctx, "counter")
					if err != nil {
						t.Error(err)
						return
					}
					n, _ := strconv.Atoi(string(kv.Value))
					_, err = c.CompareAndSwap(ctx, "counter", []byte(strconv.Itoa(n+1)), kv.Version)
					if err == nil {
						break
					}
					if !errors.Is(err, kvstore.ErrKeyModified) {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if kv := check.Must(clients[0].Get(ctx, "counter"))(t); string(kv.Value) != strconv.Itoa(workers*incs) {
		t.Fatalf("counter = %s, want %d: updates were lost", kv.Value, workers*incs)
	}
}

func testConcurrentCreate(t *testing.T, srv testenv.StoreServer) {
	const workers = 16
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	for r := range 5 {
		key := "lease/" + strconv.Itoa(r)
		var winners atomic.Int32
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				_, err := s.Create(ctx, key, []byte(strconv.Itoa(i)))
				if err == nil {
					winners.Add(1)
				} else if !errors.Is(err, kvstore.ErrKeyExists) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if winners.Load() != 1 {
			t.Fatalf("%s: %d creators won", key, winners.Load())
		}
	}
}

// testWatchOrder checks that a watch started at a listing's version sees
// every later put (in write order) and delete, and nothing under other
// prefixes.
func testWatchOrder(t *testing.T, srv testenv.StoreServer) {
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	check.Must(s.Put(ctx, "w/before", []byte("old")))(t)
	_, rev := must2(t, s, "w/")
	ch := check.Must(s.Watch(ctx, "w/", rev))(t)

	var written []string
	for i := range 20 {
		k := fmt.Sprintf("w/k%02d", i)
		check.Must(s.Put(ctx, k, []byte("v")))(t)
		check.Must(s.Put(ctx, "other/"+k, []byte("x")))(t)
		written = append(written, k)
	}
	var got []string
	var last uint64
	for len(got) < len(written) {
		ev := nextEvent(t, ch)
		if ev.Type != kvstore.EventPut {
			t.Fatalf("unexpected %v event for %s", ev.Type, ev.Key)
		}
		if ev.Version <= last {
			t.Fatalf("event versions go from %d to %d", last, ev.Version)
		}
		last = ev.Version
		got = append(got, ev.Key)
	}
	if fmt.Sprint(got) != fmt.Sprint(written) {
		t.Fatalf("puts arrived as %v, written as %v", got, written)
	}

	// Deletes, interleaved with new puts.
	want := map[string]kvstore.EventType{}
	for i := range 10 {
		check.OK(t, s.Delete(ctx, written[i]))
		want[written[i]] = kvstore.EventDelete
		k := fmt.Sprintf("w/n%02d", i)
		check.Must(s.Put(ctx, k, []byte("v")))(t)
		want[k] = kvstore.EventPut
	}
	seen := map[string]kvstore.EventType{}
	for len(seen) < len(want) {
		ev := nextEvent(t, ch)
		if ev.Version < last {
			t.Fatalf("event versions go back from %d to %d", last, ev.Version)
		}
		last = ev.Version
		seen[ev.Key] = ev.Type
	}
	if !maps.Equal(seen, want) {
		t.Fatalf("saw %v, want %v", seen, want)
	}
}

// testWatchResume stops a watch, changes the store, and resumes from the
// last version seen: the consumer's view must end equal to the store.
// etcd replays history exactly; Consul and ZooKeeper, which keep no
// history of deletes, may answer with a reset.
func testWatchResume(t *testing.T, srv testenv.StoreServer) {
	s, ctx := open(t, srv, t.Name()), testCtx(t)
	for i := range 5 {
		check.Must(s.Put(ctx, "r/"+strconv.Itoa(i), []byte("v1")))(t)
	}
	kvs, rev := must2(t, s, "r/")
	v := view{}
	for _, kv := range kvs {
		v[kv.Key] = string(kv.Value)
	}
	wctx, stop := context.WithCancel(ctx)
	ch := check.Must(s.Watch(wctx, "r/", rev))(t)
	check.Must(s.Put(ctx, "r/0", []byte("v2")))(t)
	ev := nextEvent(t, ch)
	v.apply(ev)
	stop()
	for range ch { // drained and closed once cancelled
	}

	// Changes while nobody watches.
	check.OK(t, s.Delete(ctx, "r/1"))
	check.Must(s.Put(ctx, "r/2", []byte("v3")))(t)
	check.Must(s.Put(ctx, "r/9", []byte("new")))(t)

	want := listView(t, s, "r/")
	ch = check.Must(s.Watch(ctx, "r/", ev.Version))(t)
	sawReset := false
	check.Eventually(t, 45*time.Second, check.Holds("the resumed view to match the store", func() bool {
		select {
		case ev := <-ch:
			sawReset = sawReset || ev.Type == kvstore.EventReset
			v.apply(ev)
		default:
		}
		return maps.Equal(v, want)
	}))
	if sawReset && srv.Name() != "consul" && srv.Name() != "zookeeper" {
		t.Fatalf("%s answered a resume within history with a reset", srv.Name())
	}
	var keys []string
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if fmt.Sprint(keys) != "[r/0 r/2 r/3 r/4 r/9]" {
		t.Fatalf("resumed view has keys %v", keys)
	}
}
