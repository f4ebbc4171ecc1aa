// Package null is the driver of the predefined network "none": a sandbox
// on it has its loopback interface and nothing else.
package null

import (
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/datapath"
)

// Name is the driver's name; NetworkName is its predefined network's.
const (
	Name        = "null"
	NetworkName = "none"
)

// Driver is the null driver.
type Driver struct{}

var (
	_ driver.Driver     = Driver{}
	_ driver.Predefiner = Driver{}
)

func (Driver) Name() string { return Name }

func (Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Scope: driver.ScopeLocal, Exclusive: true, Singleton: true, DefaultRank: 1}
}

func (Driver) Options() []string { return nil }

func (Driver) Configure(n *driver.Network, _ []*driver.Network) error {
	return driver.CheckOptions(Name, n.Options, nil)
}

func (Driver) MTU(*driver.Network) int { return 0 }

func (Driver) CheckJoin(*driver.Network) error { return nil }

// Render: a sandbox on none has no interface, so the host needs nothing.
func (Driver) Render(driver.View) (datapath.Network, bool) { return datapath.Network{}, false }

func (Driver) Predefined(old map[string]*driver.Network) ([]*driver.Network, error) {
	return driver.Singleton(old, NetworkName, Name), nil
}
