package testenv_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// A store server started in a namespace serves hosts on the underlay, and
// the test process reaches it through the Dial of its Config; its data
// survive Stop and Start.
func TestStoreServerInNamespace(t *testing.T) {
	starters := map[string]func(context.Context, string, testenv.ServerOptions) (testenv.StoreServer, error){
		"etcd": func(ctx context.Context, dir string, o testenv.ServerOptions) (testenv.StoreServer, error) {
			return testenv.StartEtcdProcessWith(ctx, dir, o)
		},
		"consul": func(ctx context.Context, dir string, o testenv.ServerOptions) (testenv.StoreServer, error) {
			o.Persistent = true
			return testenv.StartConsulWith(ctx, dir, o)
		},
		"zookeeper": func(ctx context.Context, dir string, o testenv.ServerOptions) (testenv.StoreServer, error) {
			return testenv.StartZooKeeperWith(ctx, dir, o)
		},
	}
	for _, name := range []string{"etcd", "consul", "zookeeper"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			u, err := nshost.NewUnderlay(nshost.Prefix("so"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { u.Close() })
			storeNS, err := u.AddHost("store", netip.MustParsePrefix("192.0.2.250/24"))
			if err != nil {
				t.Fatal(err)
			}
			client, err := u.AddHost("h1", netip.MustParsePrefix("192.0.2.1/24"))
			if err != nil {
				t.Fatal(err)
			}
			srv, err := starters[name](ctx, t.TempDir(), testenv.ServerOptions{NS: storeNS.NS, Addr: "192.0.2.250"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })

			put := func(cfg kvstore.Config, key string) {
				t.Helper()
				s, err := backends.Open(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if _, err := s.Put(ctx, key, []byte("v")); err != nil {
					t.Fatalf("put %s through %s: %v", key, cfg, err)
				}
			}
			put(srv.Config(), "from-test")
			fromHost := srv.Config()
			fromHost.Dial = client.Dial
			put(fromHost, "from-host")

			if err := srv.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(ctx); err != nil {
				t.Fatal(err)
			}
			s, err := backends.Open(srv.Config())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, k := range []string{"from-test", "from-host"} {
				if _, err := s.Get(ctx, k); err != nil {
					t.Errorf("after restart, %s: %v", k, err)
				}
			}
		})
	}
}
