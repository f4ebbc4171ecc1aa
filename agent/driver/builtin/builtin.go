// Package builtin assembles the drivers every meshagent has into a
// registry: overlay, bridge (the default for network create), null and
// host. It is the one place that knows them all by name.
package builtin

import (
	"net/netip"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/driver/bridge"
	"github.com/meshnet/meshnet/agent/driver/host"
	"github.com/meshnet/meshnet/agent/driver/null"
	"github.com/meshnet/meshnet/agent/driver/overlay"
)

// Config is what the drivers need of the agent's configuration and host.
type Config struct {
	// DefaultBridge, BIP and MTU configure the default bridge network
	// (bridge:, bip:, mtu:); DefaultBridge "none" disables it.
	DefaultBridge string
	BIP           netip.Prefix
	MTU           int
	NoICC         bool
	// HostRoutes lists the destinations the host routes.
	HostRoutes func() []netip.Prefix
	// VTEP, VXLANPort and UnderlayMTU describe this host's underlay.
	VTEP        netip.Addr
	VXLANPort   uint16
	UnderlayMTU int
}

// Registry returns the built-in drivers, in the order their names are
// listed to users.
func Registry(cfg Config) *driver.Registry {
	return driver.NewRegistry(bridge.Name, null.Name,
		overlay.New(overlay.Host{VTEP: cfg.VTEP, Port: cfg.VXLANPort, UnderlayMTU: cfg.UnderlayMTU}),
		bridge.New(bridge.Config{DefaultBridge: cfg.DefaultBridge, BIP: cfg.BIP, MTU: cfg.MTU, NoICC: cfg.NoICC, HostRoutes: cfg.HostRoutes}),
		null.Driver{}, host.Driver{})
}
