package trust

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/embedded"
	"github.com/meshnet/meshnet/kvstore/etcd"
)

func TestTokenRoundTrip(t *testing.T) {
	dir := Dir(t.TempDir())
	a, err := OpenAuthority(dir, "n1", netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	tok := a.Token()
	got, err := ParseToken(" " + tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("ParseToken(%q) = %v, %v", tok, got, err)
	}
	s := tok.String()
	for _, bad := range []string{"", "MNTKN-1-", s[:len(s)-1], strings.Replace(s, "MNTKN-1", "MNTKN-2", 1),
		s[:20] + "zz" + s[22:], s + "-x", strings.ToUpper(s)} {
		if _, err := ParseToken(bad); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseToken(%q) = %v, want one sentence", bad, err)
		}
	}
	// Reopening keeps the CA and the token; every file is the owner's.
	b, err := OpenAuthority(dir, "n1", netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Token() != tok {
		t.Errorf("reopened: token %s, want %s", b.Token(), tok)
	}
	files, _ := filepath.Glob(filepath.Join(string(dir), "*"))
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, st.Mode(), err)
		}
	}
}

// TestJoin: a host with the token gets a certificate the store takes; a
// wrong secret, another CA's token and a rotated token get one sentence
// and no certificate; the embedded store refuses a client without one.
func TestJoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	caDir := Dir(t.TempDir())
	a, err := OpenAuthority(caDir, "n1", netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := a.ServeJoin("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	good := a.Token()
	other, err := OpenAuthority(Dir(t.TempDir()), "x", netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	join := func(tok Token) (Dir, error) {
		d := Dir(t.TempDir())
		return d, Join(ctx, d, JoinOptions{Addr: js.Addr(), Token: tok, Node: "n2"})
	}
	wrongSecret := good
	wrongSecret.Secret = other.Token().Secret
	for name, tok := range map[string]Token{"wrong secret": wrongSecret, "another CA": other.Token()} {
		d, err := join(tok)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: Join = %v, want one sentence", name, err)
		}
		if Joined(d, nil) {
			t.Errorf("%s: a certificate was written", name)
		}
		t.Logf("%s: %v", name, err)
	}
	joined, err := join(good)
	if err != nil {
		t.Fatal(err)
	}
	if !Joined(joined, &good) {
		t.Fatal("joined, but no certificate of the token's CA")
	}
	if _, err := a.RotateToken(); err != nil {
		t.Fatal(err)
	}
	if _, err := join(good); err == nil {
		t.Error("the token before rotation still joins")
	}

	// The store: TLS with client certificates of the CA only.
	cert, key := a.ServerFiles()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir(), ClientURL: "https://127.0.0.1:23791",
		PeerURL: "http://127.0.0.1:23801", CertFile: cert, KeyFile: key, ClientCAFile: caDir.Path(CAFile)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	open := func(cfg kvstore.Config) error {
		cfg.Backend, cfg.Endpoints, cfg.Prefix, cfg.Timeout = kvstore.BackendEtcd, srv.Endpoints(), "t/", 2*time.Second
		s, err := etcd.New(cfg)
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Put(ctx, "k", []byte("v"))
		return err
	}
	if err := open(kvstore.Config{CAFile: joined.Path(CAFile), CertFile: joined.Path(CertFile), KeyFile: joined.Path(KeyFile)}); err != nil {
		t.Errorf("a joined host cannot write the store: %v", err)
	}
	if err := open(kvstore.Config{}); err == nil {
		t.Error("a client in clear writes the store")
	}
	if err := open(kvstore.Config{CAFile: joined.Path(CAFile)}); err == nil {
		t.Error("a TLS client without a certificate writes the store")
	}
	// Reached by a name its certificate does not carry (compose's service
	// name, a DNS alias): the chain is checked, not the name.
	byName := func(cfg kvstore.Config) error {
		cfg.Backend, cfg.Endpoints, cfg.Prefix, cfg.Timeout = kvstore.BackendEtcd, []string{"store.invalid:23791"}, "t/", 2*time.Second
		cfg.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:23791")
		}
		s, err := etcd.New(cfg)
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Put(ctx, "k", []byte("v"))
		return err
	}
	files := kvstore.Config{CAFile: joined.Path(CAFile), CertFile: joined.Path(CertFile), KeyFile: joined.Path(KeyFile)}
	if err := byName(files); err == nil {
		t.Error("by another name, without PrivateCA, the name was not checked")
	}
	files.PrivateCA = true
	if err := byName(files); err != nil {
		t.Errorf("by another name, with PrivateCA: %v", err)
	}
	stranger := other.dir
	if err := open(kvstore.Config{CAFile: joined.Path(CAFile), CertFile: stranger.Path(CertFile), KeyFile: stranger.Path(KeyFile)}); err == nil {
		t.Error("a client with another CA's certificate writes the store")
	}
}

func TestDecodeKeysBounded(t *testing.T) {
	for _, bad := range []string{``, `{}`, `{"keys":[]}`, `{"keys":["eA=="]}`, `{"keys":["` + strings.Repeat("A", 5000) + `"]}`,
		`{"keys":[` + strings.Repeat(`"AAAAAAAAAAAAAAAAAAAAAA==",`, 8) + `"AAAAAAAAAAAAAAAAAAAAAA=="]}`} {
		if _, err := decodeKeys([]byte(bad)); err == nil {
			t.Errorf("decodeKeys(%.40q) accepted", bad)
		}
	}
	k := NewGossipKey()
	got, err := decodeKeys(encodeKeys([][]byte{k}))
	if err != nil || len(got) != 1 || string(got[0]) != string(k) {
		t.Errorf("round trip: %v, %v", got, err)
	}
}
