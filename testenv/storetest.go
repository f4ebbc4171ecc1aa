package testenv

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
)

// AllStores names every backend a suite runs against.
const AllStores = "embedded,etcd,consul,zookeeper"

var storeStarters = map[string]func(context.Context, string) (StoreServer, error){
	"embedded":  func(ctx context.Context, dir string) (StoreServer, error) { return StartEmbedded(ctx, dir) },
	"etcd":      func(ctx context.Context, dir string) (StoreServer, error) { return StartEtcdProcess(ctx, dir) },
	"consul":    func(ctx context.Context, dir string) (StoreServer, error) { return StartConsul(ctx, dir) },
	"zookeeper": func(ctx context.Context, dir string) (StoreServer, error) { return StartZooKeeper(ctx, dir) },
}

// StartStores starts one real server per named backend (comma-separated;
// "" means MESHNET_TEST_STORES if set, else AllStores), in parallel, and
// stops them when the test ends. MESHNET_TEST_STORES=consul narrows a run
// while developing; CI runs every backend.
func StartStores(tb testing.TB, names string) []StoreServer {
	tb.Helper()
	if names == "" {
		names = os.Getenv("MESHNET_TEST_STORES")
	}
	if names == "" {
		names = AllStores
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	list := strings.Split(names, ",")
	servers := make([]StoreServer, len(list))
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, name := range list {
		start, ok := storeStarters[name]
		if !ok {
			tb.Fatalf("unknown store backend %q (known: %s)", name, AllStores)
		}
		dir := tb.TempDir()
		wg.Go(func() { servers[i], errs[i] = start(ctx, dir) })
	}
	wg.Wait()
	for i, s := range servers {
		if errs[i] != nil {
			tb.Fatalf("starting %s store server: %v", list[i], errs[i])
		}
		tb.Cleanup(func() { s.Close() })
	}
	return servers
}

// OpenStore returns a new client of srv (its own connection, like another
// host's agent) rooted at meshnet-test/PREFIX/, closed when the test ends.
func OpenStore(tb testing.TB, srv StoreServer, prefix string) kvstore.Store {
	tb.Helper()
	cfg := srv.Config()
	cfg.Prefix = "meshnet-test/" + prefix + "/"
	s, err := backends.Open(cfg)
	if err != nil {
		tb.Fatalf("opening %s: %v", srv.Name(), err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
