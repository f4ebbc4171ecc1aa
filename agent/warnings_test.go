package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/trust"
	"github.com/meshnet/meshnet/kvstore"
)

func TestSecurityWarnings(t *testing.T) {
	store := func(url string, opts ...string) kvstore.Config {
		c, err := kvstore.ParseURL(url, opts)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		name   string
		cfg    Config
		joined bool
		want   []string // a word of each warning, in order
	}{
		{"defaults", Config{Store: store("embedded"), IPTables: true}, false, nil},
		{"etcd in clear", Config{Store: store("etcd://192.0.2.9:2379"), IPTables: true}, false, []string{"the gossip key"}},
		{"joined another agent's embedded store", Config{Store: store("etcd://192.0.2.9:2379"), IPTables: true}, true, nil},
		{"joining it", Config{Store: store("etcd://192.0.2.9:2379"), JoinToken: &trust.Token{}, IPTables: true}, false, nil},
		{"consul in clear, a certificate of an earlier join", Config{Store: store("consul://192.0.2.9:8500"), IPTables: true}, true, []string{"without TLS"}},
		{"keyed, etcd in clear", Config{Store: store("etcd://192.0.2.9:2379"), GossipKey: make([]byte, 32), IPTables: true}, false, []string{"without TLS"}},
		{"keyed, etcd on loopback", Config{Store: store("etcd://127.0.0.1:2379"), GossipKey: make([]byte, 32), IPTables: true}, false, nil},
		{"keyed, etcd with TLS", Config{Store: store("etcd://192.0.2.9:2379", "ca=/x/ca.pem"), GossipKey: make([]byte, 32), IPTables: true}, false, nil},
		{"no filter", Config{Store: store("etcd://127.0.0.1:2379"), GossipKey: make([]byte, 32)}, false, []string{"iptables: false"}},
	} {
		got := securityWarnings(c.cfg, c.joined)
		if len(got) != len(c.want) {
			t.Errorf("%s: %q", c.name, got)
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i], w) || strings.Contains(got[i], "\n") {
				t.Errorf("%s: warning %d is %q, want one line saying %q", c.name, i, got[i], w)
			}
		}
	}
}

// TestConfigFileWarning: a configuration file with a secret that others
// can read is warned about; one without secrets, or mode 0600, is not.
func TestConfigFileWarning(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		body string
		mode os.FileMode
		want string // "" for no warning
	}{
		{"gossip-key: c2VjcmV0c2VjcmV0c2VjcmV0\n", 0o644, "(gossip-key)"},
		{"cluster-store-opt: [username=u, password=p]\n", 0o640, "(cluster-store-opt password)"},
		{"gossip-key: c2VjcmV0c2VjcmV0c2VjcmV0\n", 0o600, ""},
		{"cluster-store: embedded\n", 0o644, ""},
	} {
		path := filepath.Join(dir, "agent.yaml")
		os.WriteFile(path, []byte(c.body), 0o600)
		os.Chmod(path, c.mode)
		got := configFileWarning(path)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%q mode %04o: warning %q, want one with %q", c.body, c.mode, got, c.want)
		}
	}
}

func TestSecretFlags(t *testing.T) {
	got := secretFlags([]string{"--gossip-key", "x", "--cluster-store-opt", "password=p", "-cluster-token=t", "--node-name", "gossip-key", "--cluster-store-opt=token=abc"})
	want := []string{"gossip-key", "cluster-store-opt password", "cluster-token", "cluster-store-opt token"}
	if !slices.Equal(got, want) {
		t.Errorf("secretFlags = %q, want %q", got, want)
	}
	if got := secretFlags([]string{"--cluster-store-opt", "ca=/x", "--cluster-token-file", "/f"}); len(got) != 0 {
		t.Errorf("no secrets: %q", got)
	}
}
