package kvstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/kvstore/etcd"
	"github.com/meshnet/meshnet/testenv"
)

const regTTL = 2 * time.Second

// testRegistration: a registered key stays while its holder refreshes it,
// follows Update, and goes at once on Revoke.
func testRegistration(t *testing.T, srv testenv.StoreServer) {
	holder, observer, ctx := open(t, srv, t.Name()), open(t, srv, t.Name()), testCtx(t)
	reg := check.Must(holder.Register(ctx, "nodes/n1", []byte("v1"), regTTL))(t)
	if reg.Key() != "nodes/n1" {
		t.Fatalf("Key() = %q", reg.Key())
	}
	if kv := check.Must(observer.Get(ctx, "nodes/n1"))(t); string(kv.Value) != "v1" {
		t.Fatalf("registered value = %q", kv.Value)
	}
	// Outlive the TTL several times over: the keep-alive must hold it.
	time.Sleep(3 * regTTL)
	if kv := check.Must(observer.Get(ctx, "nodes/n1"))(t); string(kv.Value) != "v1" {
		t.Fatalf("after 3 TTLs: %q", kv.Value)
	}
	check.OK(t, reg.Update(ctx, []byte("v2")))
	if kv := check.Must(observer.Get(ctx, "nodes/n1"))(t); string(kv.Value) != "v2" {
		t.Fatalf("after Update: %q", kv.Value)
	}
	check.OK(t, reg.Revoke(ctx))
	_, err := observer.Get(ctx, "nodes/n1")
	wantErr(t, err, kvstore.ErrKeyNotFound)
	check.OK(t, reg.Revoke(ctx)) // idempotent
}

// testRegistrationExpires: a holder that stops refreshing (its client is
// closed, as when the agent dies) loses the key within about the TTL.
func testRegistrationExpires(t *testing.T, srv testenv.StoreServer) {
	observer, ctx := open(t, srv, t.Name()), testCtx(t)
	cfg := srv.Config()
	cfg.Prefix = "meshnet-test/" + t.Name() + "/"
	holder, err := backends.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	check.Must(holder.Register(ctx, "nodes/dies", []byte("x"), regTTL))(t)
	check.Must(observer.Get(ctx, "nodes/dies"))(t)
	holder.Close()
	check.Eventually(t, 45*time.Second, check.Holds("the dead holder's key to expire", func() bool {
		_, err := observer.Get(ctx, "nodes/dies")
		return errors.Is(err, kvstore.ErrKeyNotFound)
	}))
}

// testCredentials: wrong credentials give ErrPermission, right ones work.
// Consul's test server always runs with ACLs; on etcd the test turns
// authentication on and off again; ZooKeeper checks ACLs per znode.
func testCredentials(t *testing.T, srv testenv.StoreServer) {
	ctx := testCtx(t)
	cfg := srv.Config()
	cfg.Timeout = 5 * time.Second
	if srv.Name() == "zookeeper" {
		testDigestCredentials(t, cfg)
		return
	}
	if srv.Name() == "consul" {
		cfg.Token = "00000000-0000-0000-0000-000000000000"
		s, err := backends.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wantErr(t, kvstore.Ping(ctx, s), kvstore.ErrPermission)
		cfg.Token = ""
		anon := check.Must(backends.Open(cfg))(t)
		defer anon.Close()
		_, err = anon.Put(ctx, "k", []byte("v"))
		wantErr(t, err, kvstore.ErrPermission)
		return
	}

	admin := check.Must(etcd.New(cfg))(t)
	defer admin.Close()
	cli := admin.Client()
	check.Must(cli.UserAdd(ctx, "root", "right"))(t)
	check.Must(cli.UserGrantRole(ctx, "root", "root"))(t)
	check.Must(cli.AuthEnable(ctx))(t)
	defer func() {
		cfg.Username, cfg.Password = "root", "right"
		root := check.Must(etcd.New(cfg))(t)
		defer root.Close()
		check.Must(root.Client().AuthDisable(ctx))(t)
		check.Must(root.Client().UserDelete(ctx, "root"))(t)
	}()

	cfg.Username, cfg.Password = "root", "wrong"
	_, err := backends.Open(cfg)
	wantErr(t, err, kvstore.ErrPermission)
	cfg.Password = "right"
	s := check.Must(backends.Open(cfg))(t)
	defer s.Close()
	if err := kvstore.Ping(ctx, s); err != nil {
		t.Fatalf("right credentials: %v", err)
	}
}

// testDigestCredentials: the znodes a ZooKeeper client with digest
// credentials creates carry an ACL for that identity only, so a client
// with another password, or none, can neither read nor write there, and
// its Ping says so.
func testDigestCredentials(t *testing.T, cfg kvstore.Config) {
	ctx := testCtx(t)
	cfg.Prefix = "meshnet-test/" + t.Name() + "/"
	as := func(username, password string) kvstore.Store {
		c := cfg
		c.Username, c.Password = username, password
		s := check.Must(backends.Open(c))(t)
		t.Cleanup(func() { s.Close() })
		return s
	}
	right := as("meshnet", "right")
	check.Must(right.Put(ctx, "k", []byte("v")))(t)
	if err := kvstore.Ping(ctx, right); err != nil {
		t.Fatalf("right credentials: %v", err)
	}
	for name, s := range map[string]kvstore.Store{"wrong password": as("meshnet", "wrong"), "no credentials": as("", "")} {
		wantErr(t, kvstore.Ping(ctx, s), kvstore.ErrPermission)
		if _, err := s.Get(ctx, "k"); !errors.Is(err, kvstore.ErrPermission) {
			t.Errorf("Get with %s: %v, want ErrPermission", name, err)
		}
		if _, err := s.Put(ctx, "k2", []byte("x")); !errors.Is(err, kvstore.ErrPermission) {
			t.Errorf("Put with %s: %v, want ErrPermission", name, err)
		}
	}
}

// testOutage stops the server under a live client: every call fails with
// ErrUnavailable by its deadline, nothing hangs; when the server is back
// the same client, its watch and its registration work again.
func testOutage(t *testing.T, srv testenv.StoreServer) {
	s, observer, ctx := open(t, srv, t.Name()), open(t, srv, t.Name()), testCtx(t)
	v := check.Must(s.Put(ctx, "o/k", []byte("v")))(t)
	check.Must(s.Register(ctx, "o/reg", []byte("alive"), regTTL))(t)
	_, rev := must2(t, s, "o/")
	ch := check.Must(s.Watch(ctx, "o/", rev))(t)

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(context.Context) error{
		"Get":    func(ctx context.Context) error { _, err := s.Get(ctx, "o/k"); return err },
		"Put":    func(ctx context.Context) error { _, err := s.Put(ctx, "o/k", nil); return err },
		"Create": func(ctx context.Context) error { _, err := s.Create(ctx, "o/new", nil); return err },
		"CAS": func(ctx context.Context) error {
			_, err := s.CompareAndSwap(ctx, "o/k", nil, v)
			return err
		},
		"Delete": func(ctx context.Context) error { return s.Delete(ctx, "o/k") },
		"List":   func(ctx context.Context) error { _, _, err := s.List(ctx, "o/"); return err },
		"Txn": func(ctx context.Context) error {
			return s.Txn(ctx, kvstore.Op{Kind: kvstore.OpCreate, Key: "o/t"})
		},
		"Register": func(ctx context.Context) error {
			_, err := s.Register(ctx, "o/reg2", nil, regTTL)
			return err
		},
	}
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- call(cctx) }()
			select {
			case err := <-done:
				if !errors.Is(err, kvstore.ErrUnavailable) {
					t.Errorf("%s with the server down: %v, want ErrUnavailable", name, err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("%s hung with the server down", name)
			}
		})
	}
	wg.Wait()

	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	check.Eventually(t, 45*time.Second, check.Holds("the same client to work again", func() bool {
		_, err := s.Put(ctx, "o/after", []byte("back"))
		return err == nil
	}))
	if kv := check.Must(s.Get(ctx, "o/after"))(t); string(kv.Value) != "back" {
		t.Fatalf("after the outage: %q", kv.Value)
	}
	// The watch survived the outage and delivers the new write.
	for {
		ev := nextEvent(t, ch)
		if ev.Type == kvstore.EventPut && ev.Key == "o/after" {
			break
		}
	}
	// The registration is kept (etcd keeps leases across a restart, and
	// ZooKeeper sessions that reconnect in time) or re-created (Consul's
	// dev server forgets everything; an expired ZooKeeper session).
	check.Eventually(t, 45*time.Second, check.Holds("the registration to be back", func() bool {
		kv, err := observer.Get(ctx, "o/reg")
		return err == nil && string(kv.Value) == "alive"
	}))
}

// TestUnreachable: a store that is not there gives ErrUnavailable within
// the configured timeout, for every backend.
func TestUnreachable(t *testing.T) {
	port, err := testenv.FreePort() // nothing listens on it
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"etcd://127.0.0.1:%d", "consul://127.0.0.1:%d", "zk://127.0.0.1:%d"} {
		cfg, err := kvstore.ParseURL(fmt.Sprintf(url, port), []string{"timeout=1s"})
		if err != nil {
			t.Fatal(err)
		}
		t.Run(string(cfg.Backend), func(t *testing.T) {
			s, err := backends.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			done := make(chan error, 1)
			go func() { done <- kvstore.Ping(context.Background(), s) }()
			select {
			case err := <-done:
				wantErr(t, err, kvstore.ErrUnavailable)
				t.Logf("message: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("Ping hung")
			}
		})
	}
}
