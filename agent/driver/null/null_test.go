package null

import (
	"errors"
	"testing"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/datapath"
)

func TestNull(t *testing.T) {
	var d Driver
	c := d.Capabilities()
	if c.Interfaces || !c.Exclusive || !c.Singleton || c.DefaultRank == 0 {
		t.Errorf("capabilities %+v", c)
	}
	if _, ok := d.Render(driver.View{Network: &driver.Network{ID: "x"}, Local: []datapath.LocalEndpoint{{ID: "e"}}}); ok {
		t.Error("none renders kernel state")
	}
	if err := d.Configure(&driver.Network{Options: map[string]string{"mtu": "1400"}}, nil); !errors.Is(err, driver.ErrInvalid) {
		t.Errorf("option accepted: %v", err)
	}
	if err := d.CheckJoin(&driver.Network{}); err != nil {
		t.Errorf("join refused: %v", err)
	}
	nets, err := d.Predefined(nil)
	if err != nil || len(nets) != 1 || nets[0].Name != NetworkName || !nets[0].Predefined {
		t.Fatalf("predefined %+v, %v", nets, err)
	}
	kept := &driver.Network{ID: "kept", Name: NetworkName}
	if nets, _ := d.Predefined(map[string]*driver.Network{NetworkName: kept}); nets[0] != kept {
		t.Error("the kept network is not reused")
	}
}
