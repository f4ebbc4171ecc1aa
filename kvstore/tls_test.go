package kvstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/testenv"
)

// TestStoreTLS: etcd with client certificates, and Consul over HTTPS with
// client certificates and an ACL token, for real. The right files work;
// a CA that does not vouch for the server, a client without a
// certificate, and a client certificate of another CA are each refused —
// CheckTLS says which file at start, in one sentence — and so is a client
// in clear.
func TestStoreTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, kind := range []string{"etcd", "consul"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			p, err := testenv.NewPKI(dir, "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			var srv testenv.StoreServer
			opts := testenv.ServerOptions{TLS: &p}
			if kind == "etcd" {
				srv, err = testenv.StartEtcdProcessWith(ctx, dir, opts)
			} else {
				srv, err = testenv.StartConsulWith(ctx, dir, opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			good := srv.Config()
			good.Timeout = 3 * time.Second
			write := func(cfg kvstore.Config) error {
				s, err := backends.Open(cfg)
				if err != nil {
					return err
				}
				defer s.Close()
				_, err = s.Put(ctx, "tls/k", []byte("v"))
				return err
			}
			if err := kvstore.CheckTLS(ctx, good); err != nil {
				t.Errorf("CheckTLS with the right files: %v", err)
			}
			if err := write(good); err != nil {
				t.Fatalf("with the right files: %v", err)
			}
			for _, c := range []struct {
				name string
				edit func(*kvstore.Config)
				msg  string // in CheckTLS's sentence
			}{
				{"another CA", func(c *kvstore.Config) { c.CAFile = p.File("other-ca.pem") }, "cluster-store-opt ca " + p.File("other-ca.pem") + " does not vouch"},
				{"no client certificate", func(c *kvstore.Config) { c.CertFile, c.KeyFile = "", "" }, "refuses no client certificate"},
				{"another CA's client certificate", func(c *kvstore.Config) { c.CertFile, c.KeyFile = p.File("other.pem"), p.File("other-key.pem") },
					"refuses the client certificate cluster-store-opt cert " + p.File("other.pem")},
			} {
				cfg := good
				c.edit(&cfg)
				err := kvstore.CheckTLS(ctx, cfg)
				if err == nil || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: CheckTLS says %v, want one line with %q", c.name, err, c.msg)
				}
				if err := write(cfg); err == nil {
					t.Errorf("%s: a write went through", c.name)
				}
			}
			clear := good
			clear.CAFile, clear.CertFile, clear.KeyFile = "", "", ""
			if err := write(clear); err == nil {
				t.Error("a client in clear wrote to the TLS store")
			}
			if kind == "consul" {
				noToken := good
				noToken.Token = ""
				if err := write(noToken); err == nil {
					t.Error("a client without the ACL token wrote to Consul")
				}
			}
		})
	}
}
