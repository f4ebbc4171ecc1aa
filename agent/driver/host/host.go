// Package host is the driver of the predefined network "host": a sandbox
// on it is the host's own network namespace (Docker's --net host).
package host

import (
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/datapath"
)

// Name is the driver's name, and its predefined network's.
const (
	Name        = "host"
	NetworkName = "host"
)

// Driver is the host driver.
type Driver struct{}

var (
	_ driver.Driver     = Driver{}
	_ driver.Predefiner = Driver{}
)

func (Driver) Name() string { return Name }

func (Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeLocal, Exclusive: true, Singleton: true, HostNamespace: true}
}

func (Driver) Options() []string { return nil }

func (Driver) Configure(n *driver.Network, _ []*driver.Network) error {
	return driver.CheckOptions(Name, n.Options, nil)
}

func (Driver) MTU(*driver.Network) int { return 0 }

func (Driver) CheckJoin(*driver.Network) error { return nil }

// Render: the host's own stack needs nothing programmed.
func (Driver) Render(driver.View) (datapath.Network, bool) { return datapath.Network{}, false }

func (Driver) Predefined(old map[string]*driver.Network) ([]*driver.Network, error) {
	return driver.Singleton(old, NetworkName, Name), nil
}
