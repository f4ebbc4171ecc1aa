package gossip

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// TestPutRefusesRecordsHostsCannotUse: every overlay host refuses these, so
// they must not enter the table.
func TestPutRefusesRecordsHostsCannotUse(t *testing.T) {
	h := newHarness(t)
	n := h.start("v")
	cases := map[string]func(*Endpoint){
		"MAC of 8 bytes":  func(e *Endpoint) { e.MAC = make(net.HardwareAddr, 8) },
		"MAC of 20 bytes": func(e *Endpoint) { e.MAC = make(net.HardwareAddr, 20) },
		"no IP":           func(e *Endpoint) { e.IP = netip.Addr{} },
		"IPv4-mapped IP":  func(e *Endpoint) { e.IP = netip.MustParseAddr("::ffff:10.0.0.1") },
		"IPv6 as IP":      func(e *Endpoint) { e.IP = netip.MustParseAddr("fd00::1") },
		"IPv4 as IPv6":    func(e *Endpoint) { e.IPv6 = netip.MustParseAddr("10.0.0.1") },
		"IPv4-mapped v6":  func(e *Endpoint) { e.IPv6 = netip.MustParseAddr("::ffff:10.0.0.1") },
		"unspecified VTEP": func(e *Endpoint) {
			e.VTEP = netip.MustParseAddr("0.0.0.0")
		},
		"IPv4-mapped VTEP": func(e *Endpoint) { e.VTEP = netip.MustParseAddr("::ffff:192.0.2.9") },
		"multicast VTEP":   func(e *Endpoint) { e.VTEP = netip.MustParseAddr("239.1.1.1") },
	}
	for name, edit := range cases {
		e := ep("net", "e", 1)
		edit(&e)
		if err := n.Put(e); err == nil {
			t.Errorf("%s: Put accepted %s", name, fmtEndpoint(&e))
		}
	}
	good := ep("net", "good", 2)
	good.IPv6 = netip.MustParseAddr("fd00::2")
	if err := n.Put(good); err != nil {
		t.Errorf("Put refused a valid endpoint: %v", err)
	}
	noMAC := ep("net", "nomac", 3)
	noMAC.MAC = nil
	if err := n.Put(noMAC); err != nil {
		t.Errorf("Put refused an endpoint without MAC: %v", err)
	}
	if got := idsOf(n.Cluster, "net"); strings.Join(got, ",") != "net/good,net/nomac" {
		t.Errorf("table holds %v, want only the valid endpoints", got)
	}
}

// TestPutCountsWriterInRecordSize: a record carries the node name twice
// (writer and Node); one that fits only without the writer must be refused,
// or it never leaves the broadcast queue.
func TestPutCountsWriterInRecordSize(t *testing.T) {
	name := strings.Repeat("n", 200)
	h := newHarness(t)
	n := h.start(name, withIdentity(nil)) // no certificate of such a name fits the metadata
	e := ep("net", "big", 1)
	e.Node = name
	e.VTEP = h.config(name).VTEP // as Put fills it in
	withoutWriter := func() int {
		return len(appendRecord(nil, &wireRecord{Endpoint: e, Version: version{LTime: 1 << 62}, Sig: sigRoom}))
	}
	// Pad to just under the limit as counted without the writer (one byte
	// goes to the sandbox name's longer length prefix).
	e.Sandbox += strings.Repeat("s", maxRecordSize-withoutWriter()-1)
	if n := withoutWriter(); n > maxRecordSize || n < maxRecordSize-1 {
		t.Fatalf("padded record is %d bytes without the writer, want just under %d", n, maxRecordSize)
	}
	if err := n.Put(e); err == nil {
		size := len(appendRecord(nil, &wireRecord{Endpoint: e, Version: version{LTime: 1 << 62, Writer: name}, Sig: sigRoom}))
		t.Errorf("Put accepted a record of %d bytes, limit %d", size, maxRecordSize)
	}
	if err := n.Delete("net", strings.Repeat("i", maxRecordSize)); err == nil {
		t.Error("Delete accepted an ID too long for one packet")
	}
}
