package networks

import (
	"testing"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/netstore"
)

// A network whose record in the store went bad (forged, corrupt) is kept
// as it was when good, rather than taken for removed; a record that is
// really gone removes it.
func TestMalformedRecordKeepsTheLastGood(t *testing.T) {
	good := &driver.Network{ID: "n1", Name: "multi", Driver: "overlay", Scope: driver.ScopeGlobal, VNI: 4096}
	tb := NewTable(nil)
	tb.replaceGlobal([]netstore.Record{{Network: good, Version: 7}})
	changed := tb.replaceGlobal([]netstore.Record{{Network: &driver.Network{ID: "n1"}, Version: 9, Malformed: true}})
	if n := tb.Get("n1"); n == nil || n.Name != "multi" || n.VNI != 4096 || len(changed) != 0 {
		t.Fatalf("after a malformed record: %+v, changed %v", n, changed)
	}
	if r, ok := tb.Record("n1"); !ok || r.Version != 7 {
		t.Errorf("kept the version %d, want the good record's 7", r.Version)
	}
	if changed := tb.replaceGlobal(nil); tb.Get("n1") != nil || len(changed) != 1 {
		t.Errorf("a record gone for good left %+v (changed %v)", tb.Get("n1"), changed)
	}
	// A malformed record of a network never seen is nothing.
	if tb.replaceGlobal([]netstore.Record{{Network: &driver.Network{ID: "n2"}, Malformed: true}}); tb.Get("n2") != nil {
		t.Errorf("a malformed record made a network")
	}
}
