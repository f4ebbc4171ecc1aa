package driver_test

import (
	"errors"
	"testing"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/driver/builtin"
)

func TestRegistry(t *testing.T) {
	r := builtin.Registry(builtin.Config{})
	def, err := r.Get("")
	if err != nil || def.Name() != "bridge" {
		t.Fatalf("default driver %v, %v", def, err)
	}
	if _, err := r.Get("macvlan"); !errors.Is(err, driver.ErrInvalid) ||
		err.Error() != `unknown network driver "macvlan": meshnet has overlay, bridge, null and host` {
		t.Fatalf("unknown driver: %v", err)
	}
	opts := r.AllOptions()
	for _, want := range []string{"mtu", "vni", "bridge", "com.docker.network.bridge.name"} {
		found := false
		for _, o := range opts {
			found = found || o == want
		}
		if !found {
			t.Errorf("AllOptions %v lacks %s", opts, want)
		}
	}
	// Exactly one driver ranks first as the sandboxes' default network.
	best, n := 0, 0
	for _, d := range r.All() {
		switch c := d.Capabilities(); {
		case c.DefaultRank > best:
			best, n = c.DefaultRank, 1
		case c.DefaultRank == best && best > 0:
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d drivers share the top default rank", n)
	}
}

func TestCheckOptions(t *testing.T) {
	if err := driver.CheckOptions("x", map[string]string{"b": "1", "a": "2"}, nil); err == nil ||
		err.Error() != `the x driver takes no options (got "a")` {
		t.Errorf("got %v", err)
	}
	if err := driver.CheckOptions("x", map[string]string{"a": "1"}, []string{"a"}); err != nil {
		t.Errorf("known option refused: %v", err)
	}
}
