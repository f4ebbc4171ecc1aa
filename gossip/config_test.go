package gossip

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestNewRefusesBadConfig: settings that would panic, be silently dropped by
// memberlist, or produce records no host accepts are refused up front.
func TestNewRefusesBadConfig(t *testing.T) {
	cases := map[string]struct {
		edit func(*Config)
		want string // in the error
	}{
		"no VTEP":          {func(c *Config) { c.VTEP = netip.Addr{} }, "VTEP"},
		"mapped VTEP":      {func(c *Config) { c.VTEP = netip.MustParseAddr("::ffff:192.0.2.1") }, "VTEP"},
		"long node name":   {func(c *Config) { c.NodeName = strings.Repeat("n", maxNodeNameLen+1) }, "node name"},
		"long version":     {func(c *Config) { c.Version = strings.Repeat("v", 600) }, "metadata"},
		"1ns tombstones":   {func(c *Config) { c.TombstoneTTL = time.Nanosecond }, "tombstone TTL"},
		"1ns orphan grace": {func(c *Config) { c.OrphanGrace = time.Nanosecond }, "orphan grace"},
	}
	h := newHarness(t)
	for name, tc := range cases {
		cfg := h.config("bad")
		cfg.Transport = h.net.newTransport()
		tc.edit(&cfg)
		c, err := New(cfg)
		if err == nil {
			_ = c.Close()
			t.Errorf("%s: New accepted the config", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", name, err, tc.want)
		}
	}
	cfg := h.config(strings.Repeat("n", maxNodeNameLen))
	cfg.Transport = h.net.newTransport()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New refused a %d-byte node name: %v", maxNodeNameLen, err)
	}
	_ = c.Close()
}
