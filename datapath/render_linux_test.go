package datapath_test

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/testenv/nshost"
)

// render prints the overlay state of a host namespace as sorted lines: every
// link but lo and the underlay device, the bridges' IPv4 forwarding switch,
// the VXLAN devices' FDB and neighbour entries, and the IPv6 policy rules
// but the two every namespace has. Veths are shown by alias, as their names
// are hashes.
func render(t *testing.T, ns *nshost.NS) string {
	t.Helper()
	h, err := ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" || a.Name == nshost.HostDev {
			continue
		}
		var b strings.Builder
		switch v := l.(type) {
		case *netlink.Bridge:
			fmt.Fprintf(&b, "bridge %s", a.Name)
		case *netlink.Vxlan:
			fmt.Fprintf(&b, "vxlan %s vni=%d port=%d local=%s dev=%s learning=%v proxy=%v",
				a.Name, v.VxlanId, v.Port, v.SrcAddr, names[v.VtepDevIndex], v.Learning, v.Proxy)
		case *netlink.Veth:
			b.WriteString("veth")
		default:
			fmt.Fprintf(&b, "%s %s", l.Type(), a.Name)
		}
		fmt.Fprintf(&b, " alias=%s mtu=%d", a.Alias, a.MTU)
		if a.MasterIndex != 0 {
			fmt.Fprintf(&b, " master=%s", names[a.MasterIndex])
		}
		if l.Type() == "bridge" && strings.HasPrefix(a.HardwareAddr.String(), "02:6d:") {
			fmt.Fprintf(&b, " mac=%s", a.HardwareAddr)
		}
		b.WriteString(upDown(a))
		b.WriteString(renderAddrs(t, h, l))
		if l.Type() == "bridge" {
			fmt.Fprintf(&b, " forwarding=%s", readSysctl(t, ns, "net/ipv4/conf/"+a.Name+"/forwarding"))
		}
		lines = append(lines, b.String())
		if l.Type() == "vxlan" {
			lines = append(lines, renderEntries(t, h, a.Index, a.Name)...)
		}
	}
	lines = append(lines, renderRules6(t, h)...)
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// renderRules6 prints the IPv6 policy rules but those of every namespace
// (priority 0, table local; priority 32766, table main). netlink's rule
// dump leaves out a rule's action, so a prohibit rule shows as table=0.
func renderRules6(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	rules, err := h.RuleList(netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range rules {
		if (r.Priority == 0 && r.Table == unix.RT_TABLE_LOCAL) || (r.Priority == 32766 && r.Table == unix.RT_TABLE_MAIN) {
			continue
		}
		lines = append(lines, fmt.Sprintf("rule6 pref=%d iif=%s table=%d", r.Priority, r.IifName, r.Table))
	}
	return lines
}

// readSysctl reads /proc/sys/KEY in ns.
func readSysctl(t *testing.T, ns *nshost.NS, key string) string {
	t.Helper()
	var b []byte
	err := ns.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/sys/" + key)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// renderSandbox prints a sandbox's interfaces (but lo), addresses and
// default routes.
func renderSandbox(t *testing.T, ns *nshost.NS) string {
	t.Helper()
	h, err := ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" {
			continue
		}
		line := fmt.Sprintf("%s %s alias=%s mac=%s mtu=%d%s%s", a.Name, l.Type(), a.Alias, a.HardwareAddr, a.MTU, upDown(a), renderAddrs(t, h, l))
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, err := h.RouteList(l, fam)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range routes {
				if r.Dst == nil || r.Dst.IP.IsUnspecified() {
					line += " default=" + r.Gw.String()
				}
			}
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func upDown(a *netlink.LinkAttrs) string {
	if a.Flags&net.FlagUp != 0 {
		return " up"
	}
	return " down"
}

func renderAddrs(t *testing.T, h *netlink.Handle, l netlink.Link) string {
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if !a.IP.IsLinkLocalUnicast() {
			out = append(out, a.IPNet.String())
		}
	}
	if len(out) == 0 {
		return ""
	}
	slices.Sort(out)
	return " addrs=" + strings.Join(out, ",")
}

func renderEntries(t *testing.T, h *netlink.Handle, index int, name string) []string {
	var lines []string
	fdb, err := h.NeighList(index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fdb {
		if e.Flags&netlink.NTF_SELF == 0 || e.MasterIndex != 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("fdb %s %s dst=%s%s", name, e.HardwareAddr, e.IP, state(e.State)))
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		ns, err := h.NeighList(index, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ns {
			if e.State&unix.NUD_NOARP != 0 {
				continue
			}
			lines = append(lines, fmt.Sprintf("neigh %s %s %s%s", name, e.IP, e.HardwareAddr, state(e.State)))
		}
	}
	return lines
}

func state(s int) string {
	if s&unix.NUD_PERMANENT != 0 {
		return " permanent"
	}
	return fmt.Sprintf(" state=%#x", s)
}
