package ipam_test

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/testenv"
)

// onlyBackends narrows a run while developing (-args -backends=consul);
// by default, and in CI, every backend runs.
var onlyBackends = flag.String("backends", "embedded,etcd,consul", "comma-separated backends to test")

// benchBackend is the backend the benchmarks run on.
var benchBackend = flag.String("bench-backend", "embedded", "backend for benchmarks")

type starter func(context.Context, string) (testenv.StoreServer, error)

var allStarters = map[string]starter{
	"embedded": func(ctx context.Context, dir string) (testenv.StoreServer, error) {
		return testenv.StartEmbedded(ctx, dir)
	},
	"etcd": func(ctx context.Context, dir string) (testenv.StoreServer, error) {
		return testenv.StartEtcdProcess(ctx, dir)
	},
	"consul": func(ctx context.Context, dir string) (testenv.StoreServer, error) {
		return testenv.StartConsul(ctx, dir)
	},
}

// startServers starts one real server per backend, in parallel, and stops
// them when the test ends.
func startServers(t testing.TB, names string) []testenv.StoreServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var starters []starter
	for _, name := range strings.Split(names, ",") {
		st, ok := allStarters[name]
		if !ok {
			t.Fatalf("unknown backend %q", name)
		}
		starters = append(starters, st)
	}
	servers := make([]testenv.StoreServer, len(starters))
	errs := make([]error, len(starters))
	var wg sync.WaitGroup
	for i, start := range starters {
		dir := t.TempDir()
		wg.Go(func() { servers[i], errs[i] = start(ctx, dir) })
	}
	wg.Wait()
	for i, s := range servers {
		if errs[i] != nil {
			t.Fatalf("starting store server: %v", errs[i])
		}
		t.Cleanup(func() { s.Close() })
	}
	return servers
}

// open returns a new client of srv rooted at the test's own prefix,
// meshnet-test/<test name>/, closed when the test ends. Each call is a
// separate connection, like another host's agent.
func open(t testing.TB, srv testenv.StoreServer) kvstore.Store {
	t.Helper()
	cfg := srv.Config()
	cfg.Prefix = "meshnet-test/" + t.Name() + "/"
	s, err := backends.Open(cfg)
	if err != nil {
		t.Fatalf("opening %s: %v", srv.Name(), err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newAllocator returns an Allocator over a new client of srv, with at
// most maxInFlight calls in flight.
func newAllocator(t testing.TB, srv testenv.StoreServer, cfg ipam.Config) (*ipam.Allocator, kvstore.Store) {
	t.Helper()
	s := open(t, srv)
	a, err := ipam.New(limited{Store: s, sem: make(chan struct{}, maxInFlight)}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, s
}

// maxInFlight bounds each test client's concurrent store calls. All test
// clients share 127.0.0.1, and Consul refuses more than 200 connections
// from one address (limits.http_max_conns_per_client) with 429, while the
// Consul client keeps only GOMAXPROCS+1 idle connections and so opens and
// closes one per call under load; real hosts each have their own address.
// The goroutines of a concurrency test all start at once; this only
// queues their store calls.
const maxInFlight = 16

// limited is a Store that lets at most cap(sem) calls run at once.
type limited struct {
	kvstore.Store
	sem chan struct{}
}

func (l limited) acquire() func() {
	l.sem <- struct{}{}
	return func() { <-l.sem }
}

func (l limited) Get(ctx context.Context, key string) (kvstore.KVPair, error) {
	defer l.acquire()()
	return l.Store.Get(ctx, key)
}

func (l limited) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	defer l.acquire()()
	return l.Store.Create(ctx, key, value)
}

func (l limited) CompareAndDelete(ctx context.Context, key string, version uint64) error {
	defer l.acquire()()
	return l.Store.CompareAndDelete(ctx, key, version)
}

func (l limited) List(ctx context.Context, prefix string) ([]kvstore.KVPair, uint64, error) {
	defer l.acquire()()
	return l.Store.List(ctx, prefix)
}

func (l limited) Txn(ctx context.Context, ops ...kvstore.Op) error {
	defer l.acquire()()
	return l.Store.Txn(ctx, ops...)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// must checks a (value, error) result: v := must(a.LeaseNetwork(…))(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr checks that err wraps sentinel and reads as one sentence.
func wantErr(t testing.TB, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got error %v, want %v", err, sentinel)
	}
	if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
		t.Fatalf("error %q is not one line", msg)
	}
}

// keys lists the keys under prefix with their values.
func keys(t testing.TB, s kvstore.Store, prefix string) map[string]string {
	t.Helper()
	kvs, _, err := s.List(testCtx(t), prefix)
	ok(t, err)
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = string(kv.Value)
	}
	return m
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func owner(ep, node string) ipam.Owner { return ipam.Owner{EndpointID: ep, Node: node} }
