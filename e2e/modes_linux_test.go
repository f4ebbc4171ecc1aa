package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// addrsIn lists the addresses of a namespace (by name) as strings.
func addrsIn(t *testing.T, name string) []string {
	t.Helper()
	ns, err := nshost.OpenNS(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, 2) // AF_INET
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	slices.Sort(out)
	return out
}

// --net host makes /run/netns/NAME the host's namespace (no interface, no
// lease); --net container:OTHER shares OTHER's namespace and interfaces;
// removing either never tears down what the other uses.
func TestHostAndContainerModes(t *testing.T) {
	c := newCluster(t, cluster.StoreEmbedded, 1)
	n1 := c.Host(0)
	ctl(t, n1, "network", "create", "b1")
	owner, shared, host := c.Name("own"), c.Name("shr"), c.Name("hst")
	ipOwner := createSandbox(t, n1, "b1", owner)

	r := n1.AgentCtl("sandbox", "create", "--net", "host", "-p", "8080:80", host)
	if r.Code != 0 || !strings.Contains(r.Stderr, "WARNING: Published ports are discarded when using host network mode") {
		t.Fatalf("sandbox create --net host -p: %s", r)
	}
	hostAddrs := addrsIn(t, n1.Name)
	if got := addrsIn(t, host); !slices.Equal(got, hostAddrs) {
		t.Errorf("--net host sandbox has %v, the host %v", got, hostAddrs)
	}
	ctl(t, n1, "sandbox", "create", "--net", "container:"+owner, shared)
	if got, want := addrsIn(t, shared), addrsIn(t, owner); !slices.Equal(got, want) || !hasAddr(got, ipOwner.String()) {
		t.Errorf("container: sandbox has %v, its owner %v (%s)", got, want, ipOwner)
	}
	for name, mode := range map[string]string{host: `"NetworkMode": "host"`, shared: `"NetworkMode": "container:` + owner + `"`} {
		if out := ctl(t, n1, "sandbox", "inspect", name); !strings.Contains(out, mode) {
			t.Errorf("sandbox inspect %s lacks %s:\n%s", name, mode, out)
		}
	}
	if hosts, err := os.ReadFile("/etc/netns/" + shared + "/hosts"); err != nil || !strings.Contains(string(hosts), ipOwner.String()) {
		t.Errorf("/etc/netns/%s/hosts: %q, %v; want %s's address", shared, hosts, err, owner)
	}
	for _, args := range [][]string{
		{"sandbox", "rm", owner},
		{"network", "connect", "b1", host},
		{"network", "connect", "b1", shared},
		{"sandbox", "create", "--net", "container:" + owner, "-p", "80", c.Name("x")},
		{"sandbox", "create", "--net", "container:" + owner, "--net", "b1", c.Name("x")},
		{"sandbox", "create", "--net", "container:" + c.Name("nobody"), c.Name("x")},
	} {
		refused(t, n1, n1.AgentCtl(args...), args...)
	}

	ctl(t, n1, "sandbox", "rm", shared)
	if got := addrsIn(t, owner); !hasAddr(got, ipOwner.String()) {
		t.Errorf("removing the sharing sandbox took %s's address: %v", owner, got)
	}
	ctl(t, n1, "sandbox", "rm", owner)
	ctl(t, n1, "sandbox", "rm", host)
	if got := addrsIn(t, n1.Name); !hasAddr(got, n1.Addr.Addr().String()) {
		t.Errorf("removing the host sandbox changed the host: %v, was %v", got, hostAddrs)
	}
	if _, err := os.Stat("/run/netns/" + host); err == nil {
		t.Errorf("/run/netns/%s left behind", host)
	}
	ctl(t, n1, "info") // the agent still answers
}

// hasAddr reports whether one of addrs (CIDR form) is ip.
func hasAddr(addrs []string, ip string) bool {
	return slices.ContainsFunc(addrs, func(a string) bool { return strings.HasPrefix(a, ip+"/") })
}
