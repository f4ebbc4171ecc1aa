package host

import (
	"testing"

	"github.com/meshnet/meshnet/agent/driver"
)

func TestHost(t *testing.T) {
	var d Driver
	c := d.Capabilities()
	if c.Interfaces || !c.Exclusive || !c.Singleton || c.DefaultRank != 0 || !c.HostNamespace {
		t.Errorf("capabilities %+v", c)
	}
	if err := d.CheckJoin(&driver.Network{}); err != nil {
		t.Errorf("join: %v", err)
	}
	if _, ok := d.Render(driver.View{Network: &driver.Network{ID: "x"}}); ok {
		t.Error("host renders kernel state")
	}
	nets, err := d.Predefined(nil)
	if err != nil || len(nets) != 1 || nets[0].Name != NetworkName || nets[0].Driver != Name {
		t.Fatalf("predefined %+v, %v", nets, err)
	}
}
