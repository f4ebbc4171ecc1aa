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
	ca := newTestCA(t)
	cases := map[string]struct {
		edit func(*Config)
		want string // in the error
	}{
		"no VTEP":         {func(c *Config) { c.VTEP = netip.Addr{} }, "VTEP"},
		"mapped VTEP":     {func(c *Config) { c.VTEP = netip.MustParseAddr("::ffff:192.0.2.1") }, "VTEP"},
		"long node name":  {func(c *Config) { c.NodeName = strings.Repeat("n", maxNodeNameLen+1) }, "node name"},
		"long name, cert": {func(c *Config) { c.NodeName = strings.Repeat("n", 200); c.Identity = ca.identity(t, c.NodeName) }, "metadata"},
		"another's cert":  {func(c *Config) { c.Identity = ca.identity(t, "another") }, "identity"},
		"cert, other key": {func(c *Config) {
			c.Identity = ca.identity(t, c.NodeName)
			c.Identity.Key = ca.identity(t, c.NodeName).Key
		}, "key"},
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
	cfg.Transport, cfg.Identity = h.net.newTransport(), nil // no certificate of such a name fits the metadata
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New refused a %d-byte node name: %v", maxNodeNameLen, err)
	}
	_ = c.Close()
	// A version too long for the metadata is cut, not refused: it is
	// only informative.
	cfg = h.config("long-version")
	cfg.Transport = h.net.newTransport()
	cfg.Identity = ca.identity(t, cfg.NodeName)
	cfg.Version = strings.Repeat("v", 600)
	if c, err = New(cfg); err != nil {
		t.Fatalf("New refused a long version: %v", err)
	}
	defer c.Close()
	if meta := decodeMeta(*c.meta.Load()); len(meta.Cert) == 0 || !strings.HasPrefix(cfg.Version, meta.Version) || meta.Version == "" {
		t.Errorf("metadata: certificate of %d bytes, version %d bytes", len(meta.Cert), len(meta.Version))
	}
}
