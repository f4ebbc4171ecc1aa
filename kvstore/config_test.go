package kvstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		url  string
		opts []string
		want string // Config.String()
		pfx  string
	}{
		{"embedded", nil, "embedded", "meshnet/v1/"},
		{"consul://10.0.0.5:8500", nil, "consul://10.0.0.5:8500/meshnet/v1", "meshnet/v1/"},
		{"consul://consul.local:8500/prod/net", []string{"token=abc"}, "consul://consul.local:8500/prod/net", "prod/net/"},
		{"etcd://a:2379,b:2379,[::1]:2379/x/", []string{"username=u", "password=p", "timeout=2s"}, "etcd://a:2379,b:2379,[::1]:2379/x", "x/"},
		{" etcd://127.0.0.1:2379 ", nil, "etcd://127.0.0.1:2379/meshnet/v1", "meshnet/v1/"},
		{"zk://10.0.0.5:2181", nil, "zk://10.0.0.5:2181/meshnet/v1", "meshnet/v1/"},
		{"zk://a:2181,b:2181,[::1]:2181/kafka/net/", []string{"username=u", "password=p", "timeout=2s"}, "zk://a:2181,b:2181,[::1]:2181/kafka/net", "kafka/net/"},
	}
	for _, c := range good {
		cfg, err := kvstore.ParseURL(c.url, c.opts)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.url, err)
			continue
		}
		if cfg.String() != c.want || cfg.Prefix != c.pfx {
			t.Errorf("ParseURL(%q) = %s (prefix %q), want %s (prefix %q)", c.url, cfg, cfg.Prefix, c.want, c.pfx)
		}
	}
	cfg, _ := kvstore.ParseURL("etcd://h:1", []string{"timeout=2s", "ca=/x", "cert=/c", "key=/k"})
	if cfg.Timeout != 2*time.Second || cfg.CAFile != "/x" || cfg.CertFile != "/c" || cfg.KeyFile != "/k" {
		t.Errorf("options not applied: %+v", cfg)
	}

	bad := []struct {
		url  string
		opts []string
		msg  string // part of the one-sentence error
	}{
		{"", nil, "empty"},
		{"10.0.0.5:8500", nil, "no scheme"},
		{"zookeeper://h:2181", nil, `unknown scheme "zookeeper"`},
		{"consul://", nil, "no HOST:PORT"},
		{"consul://host", nil, `"host" is not HOST:PORT`},
		{"consul://:8500", nil, "has no host"},
		{"consul://h:0", nil, "invalid port"},
		{"consul://h:99999", nil, "invalid port"},
		{"consul://h:port", nil, "invalid port"},
		{"consul://a:1,b:2", nil, "one HOST:PORT"},
		{"etcd://a:1,,b:2", nil, "is not HOST:PORT"},
		{"etcd://a:1/x//y", nil, "not a clean key path"},
		{"etcd://a:1/../y", nil, "not a clean key path"},
		{"etcd://a:1?x=y", nil, "queries"},
		{"etcd://user:pw@a:1", nil, "user info"},
		{"etcd://a:1", []string{"token=x"}, "consul only"},
		{"consul://a:1", []string{"username=u"}, "etcd and zk only"},
		{"zk://", nil, "no HOST:PORT"},
		{"zk://a:2181,b", nil, `"b" is not HOST:PORT`},
		{"zk://a:2181/x/../y", nil, "not a clean key path"},
		{"zk://a:2181", []string{"token=x"}, "consul only"},
		{"zk://a:2181", []string{"password=p"}, "without username"},
		{"zk://a:2181?chroot=/x", nil, "queries"},
		{"etcd://a:1", []string{"password=p"}, "without username"},
		{"etcd://a:1", []string{"cert=/c"}, "together"},
		{"etcd://a:1", []string{"timeout=soon"}, "positive duration"},
		{"etcd://a:1", []string{"timeout=-1s"}, "positive duration"},
		{"etcd://a:1", []string{"colour=blue"}, `unknown option "colour"`},
		{"etcd://a:1", []string{"novalue"}, "not key=value"},
	}
	for _, c := range bad {
		_, err := kvstore.ParseURL(c.url, c.opts)
		if err == nil {
			t.Errorf("ParseURL(%q, %q) accepted", c.url, c.opts)
			continue
		}
		if !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseURL(%q, %q) = %q, want one line mentioning %q", c.url, c.opts, err, c.msg)
		}
	}
}

// TestTLSConfigErrors: a missing file, a file that is not PEM, a
// certificate with another's key and an expired certificate are each one
// sentence naming the option and the file.
func TestTLSConfigErrors(t *testing.T) {
	p, err := testenv.NewPKI(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	f := p.File
	for _, c := range []struct {
		opts []string
		msg  string
	}{
		{[]string{"ca=/nonexistent/ca.pem"}, "cluster-store-opt ca: cannot read /nonexistent/ca.pem"},
		{[]string{"ca=" + f("client-key.pem")}, "cluster-store-opt ca: " + f("client-key.pem") + " holds no PEM certificate"},
		{[]string{"ca=" + f("ca.pem"), "cert=" + f("client.pem"), "key=/nonexistent/key.pem"}, "cluster-store-opt key: cannot read /nonexistent/key.pem"},
		{[]string{"ca=" + f("ca.pem"), "cert=" + f("client.pem"), "key=" + f("other-key.pem")}, "are not a certificate and its key"},
		{[]string{"ca=" + f("ca.pem"), "cert=" + f("expired.pem"), "key=" + f("expired-key.pem")}, "cluster-store-opt cert: " + f("expired.pem") + " expired on"},
	} {
		cfg, err := kvstore.ParseURL("etcd://h:1", c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.TLSConfig(); err == nil || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line with %q", c.opts, err, c.msg)
		}
	}
	cfg, _ := kvstore.ParseURL("etcd://h:1", []string{"ca=" + f("ca.pem"), "cert=" + f("client.pem"), "key=" + f("client-key.pem")})
	if tc, err := cfg.TLSConfig(); err != nil || tc == nil || len(tc.Certificates) != 1 {
		t.Errorf("good files: %v", err)
	}
}

// FuzzParseURL: any input gives a config or a one-line error, never a
// panic.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"embedded", "consul://h:8500/p", "etcd://a:1,b:2/x", "etcd://[::1]:2379", "zk://a:2181,b:2181/p", "x://", "etcd://a:1?", ""} {
		f.Add(s, "timeout=1s")
	}
	f.Fuzz(func(t *testing.T, url, opt string) {
		cfg, err := kvstore.ParseURL(url, []string{opt})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if !strings.HasSuffix(cfg.Prefix, "/") {
			t.Fatalf("prefix %q does not end in /", cfg.Prefix)
		}
		if cfg.Backend != kvstore.BackendEmbedded && len(cfg.Endpoints) == 0 {
			t.Fatalf("%q parsed with no endpoints", url)
		}
	})
}
