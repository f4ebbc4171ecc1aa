// Package bridge is the driver of host-local bridge networks, Docker's
// docker0 model: a Linux bridge per network holding the gateway address,
// a veth into each sandbox, and the predefined network "bridge" (device
// mesh0 unless configured otherwise) that sandboxes join when no network
// is given.
package bridge

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/datapath"
)

// Name is the driver's name, and its predefined network's.
const (
	Name        = "bridge"
	NetworkName = "bridge"
)

// Options of the driver.
const (
	OptBridgeName     = "com.docker.network.bridge.name"
	OptBridgeNameAbbr = "bridge"
	OptICC            = "com.docker.network.bridge.enable_icc"
)

// Disabled as Config.DefaultBridge turns the default bridge network off.
const Disabled = "none"

// Config configures the driver from the agent's settings.
type Config struct {
	// DefaultBridge is the Linux bridge of the predefined network
	// (bridge: / -b); Disabled means there is none.
	DefaultBridge string
	// BIP is the default bridge's gateway in CIDR form (bip:); the zero
	// Prefix picks the first free /16 of 172.17–31.
	BIP netip.Prefix
	// MTU of the default bridge (mtu:); 0 means datapath.DefaultLocalMTU.
	MTU int
	// NoICC keeps the default bridge's sandboxes from talking to each
	// other (icc: false).
	NoICC bool
	// HostRoutes lists the destinations the host routes, so that an
	// automatic default bridge subnet avoids them.
	HostRoutes func() []netip.Prefix
}

// Driver is the bridge driver.
type Driver struct{ cfg Config }

var (
	_ driver.Driver               = (*Driver)(nil)
	_ driver.Predefiner           = (*Driver)(nil)
	_ driver.ExternalConnectivity = (*Driver)(nil)
	_ driver.ServiceDiscovery     = (*Driver)(nil)
	_ driver.PortPublisher        = (*Driver)(nil)
	_ driver.ICCFilter            = (*Driver)(nil)
)

// New returns the driver.
func New(cfg Config) *Driver { return &Driver{cfg: cfg} }

func (d *Driver) Name() string { return Name }

func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeLocal, Interfaces: true, DefaultRank: 2}
}

func (d *Driver) Options() []string {
	return []string{driver.OptMTU, driver.OptMTUAbbr, OptBridgeName, OptBridgeNameAbbr, OptICC}
}

// Configure reads the MTU and bridge name options; a network without a
// bridge name gets br-<first 12 digits of its id>, as in Docker.
func (d *Driver) Configure(n *driver.Network, others []*driver.Network) error {
	if err := driver.CheckOptions(Name, n.Options, d.Options()); err != nil {
		return err
	}
	for k, v := range n.Options {
		switch k {
		case driver.OptMTU, driver.OptMTUAbbr:
			mtu, err := driver.ParseMTU(v, 0)
			if err != nil {
				return err
			}
			n.MTU = mtu
		case OptBridgeName, OptBridgeNameAbbr:
			if len(v) == 0 || len(v) > 15 || strings.ContainsAny(v, "/ \t:%") || v == "." || v == ".." {
				return driver.Invalid("invalid bridge name %q: at most 15 characters, no '/', ':', '%%' or spaces", v)
			}
			n.Bridge = v
		case OptICC:
			if v != "true" && v != "false" {
				return driver.Invalid("invalid %s %q: give true or false", OptICC, v)
			}
		}
	}
	if n.Bridge == "" && len(n.ID) >= 12 {
		n.Bridge = "br-" + n.ID[:12]
	}
	for _, o := range others {
		if o.Driver == Name && o.Bridge == n.Bridge && o.ID != n.ID {
			return driver.Invalid("bridge %s is already used by network %s", n.Bridge, o.Name)
		}
	}
	return nil
}

func (d *Driver) CheckJoin(*driver.Network) error { return nil }

// MTU is the user's, else datapath.DefaultLocalMTU (Docker's 1500).
func (d *Driver) MTU(n *driver.Network) int {
	if n.MTU != 0 {
		return n.MTU
	}
	return datapath.DefaultLocalMTU
}

// Render gives the network a bridge when a sandbox here is on it; the
// default bridge exists always, like docker0. The host routes out of it
// (egress, isolated from other networks by the packet filter), unless the
// network is internal.
func (d *Driver) Render(v driver.View) (datapath.Network, bool) {
	n := v.Network
	if len(v.Local) == 0 && !n.Predefined {
		return datapath.Network{}, false
	}
	return datapath.Network{ID: n.ID, Bridge: n.Bridge, MTU: d.MTU(n), Forwarding: !n.Internal, RouteLocalnet: !n.Internal,
		Gateway: n.Gateway(true), Gateway6: n.Gateway(false), Local: slices.Clone(v.Local)}, true
}

// DefaultRoute: through the gateway, unless the network is internal.
func (d *Driver) DefaultRoute(n *driver.Network) bool {
	return !n.Internal && n.Gateway(true).IsValid()
}

// Discoverable: user-defined bridge networks; the default one is not, as
// in Docker.
func (d *Driver) Discoverable(n *driver.Network) bool { return !n.Predefined }

// defaultBIPs are tried in order for the default bridge when no bip is
// configured: the first that overlaps no route of the host.
var defaultBIPs = func() []netip.Prefix {
	var out []netip.Prefix
	for i := 17; i <= 31; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 1}), 16))
	}
	return out
}()

// Predefined returns the default bridge network, unless it is disabled.
// Without a configured bip it keeps the subnet it had on the same device
// (its sandboxes use it), or takes the first free /16 of 172.17–31.
func (d *Driver) Predefined(old map[string]*driver.Network) ([]*driver.Network, error) {
	if d.cfg.DefaultBridge == Disabled {
		return nil, nil
	}
	prev := old[NetworkName]
	bip := d.cfg.BIP
	if !bip.IsValid() && prev != nil && prev.Bridge == d.cfg.DefaultBridge {
		bip = prev.Gateway(true)
	}
	if !bip.IsValid() {
		var routes []netip.Prefix
		if d.cfg.HostRoutes != nil {
			routes = d.cfg.HostRoutes()
		}
		for _, p := range defaultBIPs {
			if !slices.ContainsFunc(routes, func(r netip.Prefix) bool { return r.Overlaps(p.Masked()) }) {
				bip = p
				break
			}
		}
		if !bip.IsValid() {
			return nil, errors.New("no free subnet for the default bridge in 172.17.0.0/16–172.31.0.0/16: set bip or bridge: none")
		}
	}
	sc, err := ipam.SubnetConfig{Subnet: bip.Masked(), Gateway: bip.Addr()}.Normalize()
	if err != nil {
		return nil, err
	}
	n := &driver.Network{Name: NetworkName, Driver: Name, Scope: driver.ScopeLocal,
		Created: time.Now().UTC(), Predefined: true, Bridge: d.cfg.DefaultBridge,
		Subnets: []ipam.SubnetConfig{sc}, MTU: d.cfg.MTU, IPAMDriver: "default"}
	if d.cfg.NoICC {
		n.Options = map[string]string{OptICC: "false"}
	}
	if prev != nil {
		n.ID, n.Created = prev.ID, prev.Created
	}
	return []*driver.Network{n}, nil
}

// CheckPublish: ports of sandboxes on the network are published on the
// host (DNAT by the packet filter), unless the network is internal.
func (d *Driver) CheckPublish(n *driver.Network) error {
	if n.Internal {
		return driver.Invalid("network %s is internal: its sandboxes cannot publish ports", n.Name)
	}
	return nil
}

// ICC: unless the network was created with -o enable_icc=false (or is the
// default bridge of an agent with icc: false).
func (d *Driver) ICC(n *driver.Network) bool { return n.Options[OptICC] != "false" }
