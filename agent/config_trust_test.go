package agent

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/trust"
	"github.com/meshnet/meshnet/testenv"
)

// TestConfigTrust: join tokens and the API's mutual TLS are checked at
// start, each mistake one sentence naming the key (and the file).
func TestConfigTrust(t *testing.T) {
	empty := writeFile(t, "{}")
	dir := t.TempDir()
	auth, err := trust.OpenAuthority(trust.Dir(dir), "n1", netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	token := auth.Token().String()
	tokenFile := writeFile(t, token+"\n")
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pki, err := testenv.NewPKI(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	expired, expiredKey := pki.File("expired.pem"), pki.File("expired-key.pem")
	etcd := []string{"--config", empty, "--cluster-store", "etcd://192.0.2.1:2379"}
	tcp := []string{"--config", empty, "-H", "tcp://127.0.0.1:2376"}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--config", empty, "--cluster-token", token}, "needs no token"},
		{[]string{"--config", empty, "--cluster-store-opt", "ca=/x/ca.pem"}, "does not apply to the embedded store"},
		{append(etcd, "--cluster-token", "MNTKN-1-nonsense"), "invalid cluster-token: it is not a join token"},
		{append(etcd, "--cluster-token", token, "--cluster-token-file", tokenFile), "not both"},
		{append(etcd, "--cluster-token-file", "/nonexistent/token"), "cannot read /nonexistent/token"},
		{append(etcd, "--cluster-token", token, "--cluster-store-opt", "ca="+ca), "not both"},
		{[]string{"--config", empty, "--cluster-store", "consul://192.0.2.1:8500", "--cluster-token", token}, "for etcd://"},
		{append(etcd, "--cluster-store-opt", "ca=/nonexistent/ca.pem"), "invalid cluster-store-opt ca: cannot read /nonexistent/ca.pem"},
		{append(etcd, "--cluster-store-opt", "ca="+ca, "--cluster-store-opt", "cert="+expired, "--cluster-store-opt", "key="+expiredKey),
			"invalid cluster-store-opt cert: " + expired + " expired on"},
		{tcp, "tcp://127.0.0.1:2376 is served only with mutual TLS"},
		{[]string{"--config", empty, "-H", "tcp://nowhere"}, "is not tcp://HOST:PORT"},
		{[]string{"--config", empty, "--tlsverify"}, "no host is tcp://"},
		{[]string{"--config", empty, "--tlscert", cert}, "tlsverify is not set"},
		{append(tcp, "--tlsverify", "--tlscacert", ca, "--tlscert", cert), "tlskey is not set"},
		{append(tcp, "--tlsverify", "--tlscacert", ca, "--tlscert", cert, "--tlskey", "/nonexistent/key.pem"), "cannot read tlskey /nonexistent/key.pem"},
		{append(tcp, "--tlsverify", "--tlscacert", key, "--tlscert", cert, "--tlskey", key), "tlscacert " + key + " holds no PEM certificate"},
		{append(tcp, "--tlsverify", "--tlscacert", ca, "--tlscert", cert, "--tlskey", expiredKey), "are not a certificate and its key"},
		{append(tcp, "--tlsverify", "--tlscacert", ca, "--tlscert", expired, "--tlskey", expiredKey), "tlscert " + expired + " expired"},
	} {
		_, err := load(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line with %q", c.args[2:], err, c.msg)
		}
	}
	cfg, err := load(t, append(etcd, "--cluster-token-file", tokenFile)...)
	if err != nil || cfg.JoinToken == nil || cfg.JoinToken.String() != token {
		t.Errorf("a token file: %v, %v", cfg.JoinToken, err)
	}
	cfg, err = load(t, append(tcp, "--tlsverify", "--tlscacert", ca, "--tlscert", cert, "--tlskey", key)...)
	if err != nil || cfg.APITLS == nil {
		t.Errorf("tcp:// with mutual TLS: %v", err)
	}
}
