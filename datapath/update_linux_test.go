package datapath_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/datapath"
)

// TestInvalidUpdateKeepsLiveNetwork checks that a desired network Apply
// rejects (invalid, or sharing another's VNI) keeps its devices and its
// sandboxes' traffic.
func TestInvalidUpdateKeepsLiveNetwork(t *testing.T) {
	tb, apply, check := driftBed(t, "ovkp")
	want := render(t, tb.hosts[0].NS)
	eps := [2][2]string{{"s1", "10.60.0.2/24"}, {"s2", "10.60.0.3/24"}}
	good := twoHostNet(tb, "blue", 60, "10.60.0.1/24", eps, 0, true)

	bad := good
	bad.MTU = 20
	if err := tb.dps[0].Apply([]datapath.Network{bad}); !errors.Is(err, datapath.ErrInvalid) {
		t.Errorf("Apply(invalid blue) = %v, want ErrInvalid", err)
	}
	if got := render(t, tb.hosts[0].NS); got != want {
		t.Errorf("after Apply(invalid blue):\n%s\nwant:\n%s", got, want)
	}
	check()

	red := datapath.Network{ID: "red", VNI: 61, VTEP: vteps[0].Addr()}
	moved := good
	moved.VNI = 61
	if err := tb.dps[0].Apply([]datapath.Network{red, moved}); !errors.Is(err, datapath.ErrInvalid) {
		t.Errorf("Apply(red, blue on red's VNI) = %v, want ErrInvalid", err)
	}
	got := render(t, tb.hosts[0].NS)
	for _, line := range strings.Split(want, "\n") {
		if !strings.Contains(got, line) {
			t.Errorf("after Apply(red, blue on red's VNI), %q is gone:\n%s", line, got)
		}
	}
	check()
	apply()
	if got := render(t, tb.hosts[0].NS); got != want {
		t.Errorf("after Apply(blue):\n%s\nwant:\n%s", got, want)
	}
}

// TestVNIChangeRemovesOldDevices checks that a network moving to another VNI
// leaves nothing behind that would block its old VNI, and that networks can
// swap VNIs in one Apply.
func TestVNIChangeRemovesOldDevices(t *testing.T) {
	tb, _, check := driftBed(t, "ovvc")
	eps := [2][2]string{{"s1", "10.60.0.2/24"}, {"s2", "10.60.0.3/24"}}
	for i, dp := range tb.dps {
		mustApply(t, dp, twoHostNet(tb, "blue", 62, "10.60.0.1/24", eps, i, true))
	}
	got := render(t, tb.hosts[0].NS)
	if strings.Contains(got, "mnbr-60") || strings.Contains(got, "mnvx-60") || !strings.Contains(got, "vxlan mnvx-62 ") {
		t.Errorf("after moving blue from VNI 60 to 62:\n%s", got)
	}
	check()

	red := datapath.Network{ID: "red", VNI: 60, VTEP: vteps[0].Addr()}
	mustApply(t, tb.dps[0], twoHostNet(tb, "blue", 62, "10.60.0.1/24", eps, 0, true), red)
	red.VNI = 62
	mustApply(t, tb.dps[0], twoHostNet(tb, "blue", 60, "10.60.0.1/24", eps, 0, true), red)
	got = render(t, tb.hosts[0].NS)
	for _, line := range []string{"bridge mnbr-60 alias=meshnet:net=blue ", "vxlan mnvx-60 vni=60 ", "bridge mnbr-62 alias=meshnet:net=red ", "vxlan mnvx-62 vni=62 "} {
		if !strings.Contains(got, line) {
			t.Errorf("after swapping VNIs, no %q in\n%s", line, got)
		}
	}
	for i, dp := range tb.dps[1:] {
		mustApply(t, dp, twoHostNet(tb, "blue", 60, "10.60.0.1/24", eps, i+1, true))
	}
	check()
}

// TestDeviceErrorsDoNotStopTheNetwork checks that a bridge that cannot take
// its IPv6 gateway (IPv6 is disabled on the host) still gets its VXLAN
// device, entries and endpoints.
func TestDeviceErrorsDoNotStopTheNetwork(t *testing.T) {
	tb := newTestbed(t, "ovde", 1)
	err := tb.hosts[0].Do(func() error {
		return errors.Join(
			os.WriteFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", []byte("1"), 0),
			os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0),
		)
	})
	if err != nil {
		t.Fatal(err)
	}
	n := blue(tb, []datapath.RemoteEndpoint{{IP: ip("10.1.0.3"), VTEP: ip("192.0.2.2")}},
		local(tb, "a", "s1", "eth0", "10.1.0.2/24", "", true))
	if err := tb.dps[0].Apply([]datapath.Network{n}); err == nil || !strings.Contains(err.Error(), "fd00:1::1/64") {
		t.Errorf("Apply = %v, want an error adding fd00:1::1/64", err)
	}
	got := render(t, tb.hosts[0].NS)
	for _, line := range []string{
		"bridge mnbr-100 alias=meshnet:net=blue mtu=1450 mac=02:6d:0a:01:00:01 up addrs=10.1.0.1/24",
		"vxlan mnvx-100 vni=100 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=blue mtu=1450 master=mnbr-100 up",
		"fdb mnvx-100 02:6d:0a:01:00:03 dst=192.0.2.2 permanent",
		"neigh mnvx-100 10.1.0.3 02:6d:0a:01:00:03 permanent",
		"veth alias=meshnet:net=blue:ep=a mtu=1450 master=mnbr-100 up",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("no %q in\n%s", line, got)
		}
	}
}

// TestMappedVTEPs checks that IPv4-mapped IPv6 VTEPs are IPv4 VTEPs.
func TestMappedVTEPs(t *testing.T) {
	tb := newTestbed(t, "ovmv", 1)
	mustApply(t, tb.dps[0], datapath.Network{ID: "blue", VNI: 7, VTEP: ip("::ffff:192.0.2.1"),
		Remote: []datapath.RemoteEndpoint{{IP: ip("10.7.0.3"), VTEP: ip("::ffff:192.0.2.2")}}})
	got := render(t, tb.hosts[0].NS)
	for _, line := range []string{
		"vxlan mnvx-7 vni=7 port=4789 local=192.0.2.1 dev=eth0 learning=false proxy=true alias=meshnet:net=blue mtu=1450 ",
		"fdb mnvx-7 02:6d:0a:07:00:03 dst=192.0.2.2 permanent",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("no %q in\n%s", line, got)
		}
	}
}

// TestIPv6VTEPMTU checks the default MTU over an IPv6 underlay: 1500 − 70.
func TestIPv6VTEPMTU(t *testing.T) {
	tb := newTestbed(t, "ov6m", 0)
	h, err := tb.ul.AddHost("h1", pfx("2001:db8::1/64"))
	if err != nil {
		t.Fatal(err)
	}
	dp, err := datapath.New(h.Handle())
	if err != nil {
		t.Fatal(err)
	}
	tb.hosts, tb.dps = append(tb.hosts, h), append(tb.dps, dp)
	mustApply(t, dp, datapath.Network{ID: "blue", VNI: 8, VTEP: ip("2001:db8::1"),
		Remote: []datapath.RemoteEndpoint{{IP: ip("10.8.0.3"), VTEP: ip("2001:db8::2")}}})
	got := render(t, h.NS)
	for _, line := range []string{
		"bridge mnbr-8 alias=meshnet:net=blue mtu=1430 ",
		"vxlan mnvx-8 vni=8 port=4789 local=2001:db8::1 dev=eth0 learning=false proxy=true alias=meshnet:net=blue mtu=1430 ",
		"fdb mnvx-8 02:6d:0a:08:00:03 dst=2001:db8::2 permanent",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("no %q in\n%s", line, got)
		}
	}
}
