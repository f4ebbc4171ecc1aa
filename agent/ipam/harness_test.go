package ipam_test

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv"
)

// benchBackend is the backend the benchmarks run on.
var benchBackend = flag.String("bench-backend", "embedded", "backend for benchmarks")

// startServers starts a real server per backend (see testenv.StartStores).
func startServers(t testing.TB, names string) []testenv.StoreServer {
	return testenv.StartStores(t, names)
}

// open returns a new client of srv rooted at the test's own prefix,
// meshnet-test/<test name>/. Each call is a separate connection, like
// another host's agent.
func open(t testing.TB, srv testenv.StoreServer) kvstore.Store {
	return testenv.OpenStore(t, srv, t.Name())
}

// newAllocator returns an Allocator over a new client of srv.
func newAllocator(t testing.TB, srv testenv.StoreServer, cfg ipam.Config) (*ipam.Allocator, kvstore.Store) {
	t.Helper()
	s := open(t, srv)
	a, err := ipam.New(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
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
	check.OK(t, err)
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = string(kv.Value)
	}
	return m
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func owner(ep, node string) ipam.Owner { return ipam.Owner{EndpointID: ep, Node: node} }
