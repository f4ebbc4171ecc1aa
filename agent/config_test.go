package agent

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/kvstore"
)

// load runs a meshagent-like app on args and returns the validated config.
func load(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	var cfg Config
	var cfgErr error
	app := NewApp(func(c *cli.Context) error {
		cfg, cfgErr = ConfigFromCLI(c)
		return nil
	})
	if err := app.Run(append([]string{"meshagent"}, args...)); err != nil {
		return cfg, err
	}
	return cfg, cfgErr
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := load(t, "--config", writeFile(t, "{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if cfg.NodeName != host || cfg.StoreURL != "embedded" || cfg.GossipPort != 7946 ||
		cfg.DataDir != "/var/lib/meshnet" || cfg.Hosts[0] != "unix:///run/meshnet/agent.sock" ||
		cfg.Bridge != "mesh0" || !cfg.ICC || !cfg.IPForward || !cfg.IPTables || cfg.VXLANPort != 4789 ||
		len(cfg.GlobalPools) != 1 || len(cfg.LocalPools) != 2 || cfg.LogLevel != "info" || cfg.LogFormat != "text" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg.Store.Prefix != "meshnet/v1/" {
		t.Fatalf("store prefix %q", cfg.Store.Prefix)
	}
}

// TestConfigPrecedence: flags beat the environment, which beats the file,
// which beats the defaults.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, `
node-name: from-file
cluster-store: consul://10.0.0.5:8500
cluster-advertise: eth0:7000
vxlan-port: 4800
ip-forward: false
dns: [192.0.2.53]
bridge: br-file
default-address-pools:
  - base=10.10.0.0/16,size=24
`)
	t.Setenv("MESHNET_NODE_NAME", "from-env")
	t.Setenv("MESHNET_BRIDGE", "br-env")
	cfg, err := load(t, "--config", file, "-b", "br-flag")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "from-env" || cfg.Bridge != "br-flag" || cfg.StoreURL != "consul://10.0.0.5:8500" ||
		cfg.AdvertiseIface != "eth0" || cfg.GossipPort != 7000 || cfg.VXLANPort != 4800 || cfg.IPForward ||
		len(cfg.DNS) != 1 || cfg.DNS[0] != netip.MustParseAddr("192.0.2.53") ||
		len(cfg.GlobalPools) != 1 || cfg.GlobalPools[0].Size != 24 || len(cfg.LocalPools) != 2 {
		t.Fatalf("precedence: %+v", cfg)
	}
}

func TestConfigAdvertise(t *testing.T) {
	for in, want := range map[string]string{
		"eth0":            "eth0 7946",
		"eth0:2376":       "eth0 2376",
		"192.0.2.1":       "192.0.2.1 7946",
		"192.0.2.1:7000":  "192.0.2.1 7000",
		"[2001:db8::1]:9": "2001:db8::1 9",
	} {
		cfg, err := load(t, "--config", writeFile(t, "{}"), "--cluster-advertise", in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		got := cfg.AdvertiseIface
		if cfg.AdvertiseAddr.IsValid() {
			got = cfg.AdvertiseAddr.String()
		}
		if got += " " + strconv.Itoa(cfg.GossipPort); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

// TestConfigZooKeeperStore: a ZooKeeper ensemble with a prefix and digest
// credentials, as the contract spells the cluster store.
func TestConfigZooKeeperStore(t *testing.T) {
	cfg, err := load(t, "--config", writeFile(t, `
cluster-store: zk://zk1:2181,zk2:2181,zk3:2181/kafka/meshnet
cluster-store-opt: [username=mesh, password=secret]
`))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Store; s.Backend != kvstore.BackendZooKeeper || len(s.Endpoints) != 3 ||
		s.Prefix != "kafka/meshnet/" || s.Username != "mesh" || s.Password != "secret" {
		t.Errorf("store config %s (user %q): want zk with 3 endpoints, prefix kafka/meshnet/, user mesh", s, s.Username)
	}
}

func TestConfigBadInput(t *testing.T) {
	empty := writeFile(t, "{}")
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--config", "/nonexistent/agent.yaml"}, "reading configuration file"},
		{[]string{"--config", writeFile(t, "node-name: [unclosed")}, "not valid YAML"},
		{[]string{"--config", writeFile(t, "clustr-store: embedded")}, `unknown key "clustr-store"`},
		{[]string{"--config", empty, "--cluster-store", "zookeeper://h:1"}, `unknown scheme "zookeeper"`},
		{[]string{"--config", empty, "--cluster-store", "zk://h:1", "--cluster-store-opt", "token=t"}, "token applies to consul only"},
		{[]string{"--config", empty, "--cluster-store-opt", "colour=blue"}, `unknown option "colour"`},
		{[]string{"--config", empty, "--cluster-advertise", "eth0:99999"}, "cluster-advertise"},
		{[]string{"--config", empty, "--cluster-advertise", "0.0.0.0"}, "cluster-advertise"},
		{[]string{"--config", empty, "--bip", "172.17.0.1"}, "invalid bip"},
		{[]string{"--config", empty, "--mtu", "100"}, "invalid mtu"},
		{[]string{"--config", empty, "--dns", "resolver"}, "invalid dns"},
		{[]string{"--config", empty, "--vxlan-port", "0"}, "invalid vxlan-port"},
		{[]string{"--config", empty, "--default-address-pools", "base=10.0.0.0/8"}, "default-address-pools"},
		{[]string{"--config", empty, "--default-address-pools", "base=10.0.0.1/8,size=24"}, "host bits"},
		{[]string{"--config", empty, "--default-address-pools", "base=10.0.0.0/8,size=24,scope=site"}, "scope is global or local"},
		{[]string{"--config", empty, "--gossip-key", "short"}, "invalid gossip-key"},
		{[]string{"--config", empty, "--log-level", "loud"}, "invalid log-level"},
		{[]string{"--config", empty, "-H", "http://x"}, "invalid host"},
		{[]string{"--config", empty, "--node-name", "a/b"}, "invalid node-name"},
		{[]string{"--config", empty, "--node-reclaim-after", "soon"}, "invalid node-reclaim-after"},
		{[]string{"--config", empty, "--node-reclaim-after", "500ms"}, "at least 1s"},
	} {
		_, err := load(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line mentioning %q", c.args, err, c.msg)
		}
	}
}

// TestConfigNodeReclaimAfter: the grace before a departed node's leases
// are reclaimed, 10 minutes unless the file or a flag says otherwise.
func TestConfigNodeReclaimAfter(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"--config", writeFile(t, "{}")}, 10 * time.Minute},
		{[]string{"--config", writeFile(t, "node-reclaim-after: 90s")}, 90 * time.Second},
		{[]string{"--config", writeFile(t, "{}"), "--node-reclaim-after", "1h"}, time.Hour},
	} {
		cfg, err := load(t, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.NodeReclaimAfter != c.want {
			t.Errorf("%v: node-reclaim-after %s, want %s", c.args, cfg.NodeReclaimAfter, c.want)
		}
	}
}

func TestConfigAddressPoolsFromFlags(t *testing.T) {
	cfg, err := load(t, "--config", writeFile(t, "{}"),
		"--default-address-pools", "base=10.10.0.0/16,size=24",
		"--default-address-pools", "base=172.30.0.0/16,size=20,scope=local")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.GlobalPools) != 1 || cfg.GlobalPools[0].String() != "base=10.10.0.0/16,size=24" ||
		len(cfg.LocalPools) != 1 || cfg.LocalPools[0].String() != "base=172.30.0.0/16,size=20" {
		t.Fatalf("pools: global %v, local %v", cfg.GlobalPools, cfg.LocalPools)
	}
}

func TestConfigAddressPoolFieldOrder(t *testing.T) {
	cfg, err := load(t, "--config", writeFile(t, "{}"),
		"--default-address-pools", "size=24,base=10.10.0.0/16",
		"--default-address-pools", "scope=local,base=172.30.0.0/16,size=20")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.GlobalPools) != 1 || cfg.GlobalPools[0].String() != "base=10.10.0.0/16,size=24" ||
		len(cfg.LocalPools) != 1 || cfg.LocalPools[0].String() != "base=172.30.0.0/16,size=20" {
		t.Fatalf("pools: global %v, local %v", cfg.GlobalPools, cfg.LocalPools)
	}
	for _, bad := range [][]string{
		{"--default-address-pools", "base=10.0.0.0/8,size=24,scope=local"}, // overlaps the default global pool
		{"--default-address-pools", "base=0.0.0.0/0,size=8"},
		{"--bip", "172.17.0.0/16"},
		{"--bip", "172.17.0.1/32"},
	} {
		if _, err := load(t, append([]string{"--config", writeFile(t, "{}")}, bad...)...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := load(t, "--config", writeFile(t, "- a\n- b\n")); err == nil || !strings.Contains(err.Error(), "key: value") {
		t.Errorf("a YAML list as config: %v", err)
	}
}

// TestConfigFileValueShapes: every list-valued key takes one value or a
// list, and a value of the wrong shape is one sentence naming the key,
// never the configuration library's own wording.
func TestConfigFileValueShapes(t *testing.T) {
	cfg, err := load(t, "--config", writeFile(t, `
host: unix:///run/meshnet/other.sock
dns: 192.0.2.53
dns-search: [a.example, b.example]
cluster-store-opt: timeout=7s
mtu: 1400
icc: true
node-name: 42
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Hosts) != 1 || cfg.Hosts[0] != "unix:///run/meshnet/other.sock" {
		t.Errorf("scalar host: %v", cfg.Hosts)
	}
	if len(cfg.DNS) != 1 || cfg.DNS[0].String() != "192.0.2.53" || len(cfg.DNSSearch) != 2 {
		t.Errorf("dns %v, dns-search %v", cfg.DNS, cfg.DNSSearch)
	}
	if cfg.Store.Timeout.String() != "7s" || cfg.MTU != 1400 || cfg.NodeName != "42" {
		t.Errorf("timeout %s, mtu %d, node-name %q", cfg.Store.Timeout, cfg.MTU, cfg.NodeName)
	}
	for body, want := range map[string]string{
		"mtu: big":                `key "mtu" takes a whole number, not "big"`,
		"icc: maybe":              `key "icc" takes true or false, not "maybe"`,
		"node-name: [a, b]":       `key "node-name" takes one value, not a list`,
		"host: {unix: x}":         `key "host" takes a value or a list of values, not a mapping`,
		"dns: [[192.0.2.1]]":      `key "dns" takes a value or a list of values, not a list`,
		"data-dir: {a: b}":        `key "data-dir" takes one value, not a mapping`,
		"config: /etc/other.yaml": `unknown key "config"`,
		"vxlan-port: 4789.5":      `key "vxlan-port" takes a whole number, not 4789.5`,
	} {
		_, err := load(t, "--config", writeFile(t, body))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") ||
			strings.Contains(err.Error(), "Mismatched") || strings.Contains(err.Error(), "interface") {
			t.Errorf("%q: got %v, want one line with %q", body, err, want)
		}
	}
}

// TestConfigPacketFilter: icc and iptables are booleans of file, flag
// and environment alike.
func TestConfigPacketFilter(t *testing.T) {
	cfg, err := load(t, "--config", writeFile(t, "icc: false\niptables: false\n"))
	if err != nil || cfg.ICC || cfg.IPTables {
		t.Fatalf("icc %v iptables %v, %v", cfg.ICC, cfg.IPTables, err)
	}
	t.Setenv("MESHNET_ICC", "false")
	if cfg, err := load(t, "--config", writeFile(t, "{}")); err != nil || cfg.ICC {
		t.Fatalf("MESHNET_ICC=false: icc %v, %v", cfg.ICC, err)
	}
}
