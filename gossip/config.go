package gossip

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the gossip port (TCP and UDP) used when none is configured.
const DefaultPort = 7946

// Config configures a Cluster. Zero values take the documented defaults.
type Config struct {
	// NodeName is this host's unique name in the cluster. Required, at most
	// 255 bytes.
	NodeName string

	// BindAddr and BindPort are where the gossip UDP and TCP listeners bind.
	// Defaults: "0.0.0.0" and DefaultPort; BindPort -1 picks a free port
	// (tests).
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what peers dial (cluster-advertise).
	// Defaults: derived from the bind address, and the bound port.
	AdvertiseAddr string
	AdvertisePort int

	// VTEP is this host's VXLAN tunnel endpoint, published in node metadata
	// and the default of Endpoint.VTEP. Required: a unicast IPv4 or IPv6
	// address (not IPv4-mapped).
	VTEP netip.Addr
	// Version is the agent version, published in node metadata (which
	// memberlist limits to 512 bytes).
	Version string

	// SecretKey, if set, encrypts and authenticates all gossip with AES-GCM
	// (16, 24 or 32 bytes: AES-128/192/256). Nodes with another key, or none,
	// cannot join.
	SecretKey []byte
	// Keys, if set instead, is a keyring: gossip is encrypted with the
	// first and decrypted with any (for rotating a key without a
	// partition; see Cluster.SetKeys).
	Keys [][]byte

	// Identity, if set, signs this node's records, and every record
	// received must be signed by its writer's certificate (sign.go).
	// Cluster.SetIdentity sets it later.
	Identity *Identity

	// Timing holds the failure detector and dissemination knobs.
	Timing Timing

	// TombstoneTTL is how long a delete is remembered (and gossiped). It must
	// outlive any update still in flight: a put older than the delete that
	// arrives after the tombstone is reaped resurrects the endpoint until
	// its owner overrides it. Default: 10 × PushPullInterval; at least
	// 100ms.
	TombstoneTTL time.Duration
	// OrphanGrace is how long a record may name an owner that is not in the
	// member list before it is dropped (covers records that arrive before
	// their owner's alive message). Default: 10s; at least 100ms.
	OrphanGrace time.Duration
	// ReconnectInterval is how often the cluster tries to rejoin a failed
	// member, to heal partitions that outlast memberlist's own gossip to the
	// dead; ReconnectTimeout is when it gives up. Defaults: 10s and 1h.
	ReconnectInterval time.Duration
	ReconnectTimeout  time.Duration

	// Logger receives the package's and memberlist's logs. Default: discard.
	Logger *slog.Logger

	// Transport, if set, replaces memberlist's UDP/TCP transport (in-memory
	// networks in tests). Bind and advertise settings are then ignored.
	Transport memberlist.Transport
}

// Timing holds memberlist's timing knobs. Zero fields take the LAN values of
// LANTiming.
type Timing struct {
	// GossipInterval is how often a node with pending broadcasts sends them
	// to GossipNodes random peers. It sets the fast-path latency: an update
	// reaches N nodes in about log_{GossipNodes+1}(N) intervals. Idle nodes
	// send nothing, so a short interval costs packets only while changes
	// are in flight: GossipNodes/GossipInterval packets per second per node.
	GossipInterval time.Duration
	GossipNodes    int
	// RetransmitMult: each broadcast is sent RetransmitMult × log10(N+1)
	// times by every node that learns it.
	RetransmitMult int
	// ProbeInterval, ProbeTimeout and SuspicionMult set failure detection:
	// a silent node is declared dead after roughly
	// SuspicionMult × log10(N) × ProbeInterval past its first failed probe.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
	// PushPullInterval is the full-state repair period (scaled up by
	// memberlist beyond 32 nodes).
	PushPullInterval time.Duration
	// TCPTimeout bounds push/pull exchanges and joins.
	TCPTimeout time.Duration
	// GossipToTheDeadTime is how long dead nodes still get gossip, which lets
	// a wrongly declared node refute its death after a short partition.
	GossipToTheDeadTime time.Duration
}

// LANTiming returns memberlist's LAN settings with the gossip interval cut
// from 200ms to 50ms so that an update reaches 20 hosts well within 250ms
// (see BENCH.md).
func LANTiming() Timing {
	c := memberlist.DefaultLANConfig()
	return Timing{
		GossipInterval:      50 * time.Millisecond,
		GossipNodes:         c.GossipNodes,
		RetransmitMult:      c.RetransmitMult,
		ProbeInterval:       c.ProbeInterval,
		ProbeTimeout:        c.ProbeTimeout,
		SuspicionMult:       c.SuspicionMult,
		PushPullInterval:    c.PushPullInterval,
		TCPTimeout:          c.TCPTimeout,
		GossipToTheDeadTime: c.GossipToTheDeadTime,
	}
}

func (t Timing) withDefaults() Timing {
	d := LANTiming()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	seti := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&t.GossipInterval, d.GossipInterval)
	seti(&t.GossipNodes, d.GossipNodes)
	seti(&t.RetransmitMult, d.RetransmitMult)
	set(&t.ProbeInterval, d.ProbeInterval)
	set(&t.ProbeTimeout, d.ProbeTimeout)
	seti(&t.SuspicionMult, d.SuspicionMult)
	set(&t.PushPullInterval, d.PushPullInterval)
	set(&t.TCPTimeout, d.TCPTimeout)
	set(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	return t
}

// minReapPeriod is the smallest TombstoneTTL and OrphanGrace accepted: the
// maintenance loop ticks at a fraction of them, and shorter periods would
// only drop deletes and records still in flight.
const minReapPeriod = 100 * time.Millisecond

// meta is the node metadata c publishes.
func (c Config) meta() nodeMeta {
	m := nodeMeta{VTEP: c.VTEP, Version: c.Version}
	if c.Identity != nil {
		m.Cert = c.Identity.Cert.Raw
	}
	return m
}

func (c Config) withDefaults() (Config, error) {
	if c.NodeName == "" {
		return c, errors.New("node name is required")
	}
	if len(c.NodeName) > maxNodeNameLen {
		return c, fmt.Errorf("node name is %d bytes, limit %d", len(c.NodeName), maxNodeNameLen)
	}
	if err := checkVTEP(c.VTEP); err != nil {
		return c, fmt.Errorf("checking this node's VTEP: %w", err)
	}
	if c.Identity != nil {
		if err := c.Identity.check(c.NodeName); err != nil {
			return c, fmt.Errorf("checking this node's identity: %w", err)
		}
	}
	if _, err := encodeMeta(c.meta()); err != nil {
		return c, err
	}
	if len(c.SecretKey) > 0 {
		if len(c.Keys) > 0 {
			return c, errors.New("give a secret key or a keyring, not both")
		}
		c.Keys = [][]byte{c.SecretKey}
	}
	for _, k := range c.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return c, fmt.Errorf("checking secret key: %w", err)
		}
	}
	c.Timing = c.Timing.withDefaults()
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	switch {
	case c.BindPort == 0:
		c.BindPort = DefaultPort
	case c.BindPort < 0:
		c.BindPort = 0 // memberlist: pick a free port
	}
	if c.TombstoneTTL <= 0 {
		c.TombstoneTTL = 10 * c.Timing.PushPullInterval
	}
	if c.OrphanGrace <= 0 {
		c.OrphanGrace = 10 * time.Second
	}
	if c.TombstoneTTL < minReapPeriod {
		return c, fmt.Errorf("tombstone TTL %v is below the minimum %v", c.TombstoneTTL, minReapPeriod)
	}
	if c.OrphanGrace < minReapPeriod {
		return c, fmt.Errorf("orphan grace %v is below the minimum %v", c.OrphanGrace, minReapPeriod)
	}
	if c.ReconnectInterval <= 0 {
		c.ReconnectInterval = 10 * time.Second
	}
	if c.ReconnectTimeout <= 0 {
		c.ReconnectTimeout = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// memberlistConfig translates c (with defaults applied) for memberlist.
func (c *Config) memberlistConfig(d *delegate) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.NodeName
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort
	}
	mc.Transport = c.Transport
	if len(c.Keys) > 0 {
		// Checked by withDefaults: NewKeyring cannot fail.
		mc.Keyring, _ = memberlist.NewKeyring(c.Keys[1:], c.Keys[0])
	}
	mc.Delegate = d
	mc.Events = d

	t := c.Timing
	mc.GossipInterval = t.GossipInterval
	mc.GossipNodes = t.GossipNodes
	mc.RetransmitMult = t.RetransmitMult
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout
	mc.GossipToTheDeadTime = t.GossipToTheDeadTime

	mc.Logger = log.New(&logWriter{logger: c.Logger}, "", 0)
	return mc
}
