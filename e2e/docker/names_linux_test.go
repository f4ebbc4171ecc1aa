package docker

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshnet/meshnet/testenv/dockerd"
	"github.com/vishvananda/netlink"
)

// Names across hosts: with dockerd's dns set to the agent's docker-dns, a
// container on h2 resolves one on h1 by name, --network-alias and
// NAME.NETWORK (Docker's own resolver answers for h2's containers and
// forwards the rest to meshnet); a removed container stops resolving. The address answers the host's containers only: a
// machine of the underlay that routes to it gets nothing.
func TestNames(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		hosts := cluster(t, ctx, engine, "dkd"+tag, 2)
		h1, h2 := hosts[0], hosts[1]
		createNetwork(t, ctx, hosts, "--subnet", "10.82.0.0/24", "multi")
		h1.docker(t, ctx, "run", "-d", "--net", "multi", "--name", "c1", "--network-alias", "web", dockerd.BusyboxImage, "sleep", "600")
		h2.docker(t, ctx, "run", "-d", "--net", "multi", "--name", "c2", dockerd.BusyboxImage, "sleep", "600")
		ip1 := h1.docker(t, ctx, "inspect", "-f", "{{.NetworkSettings.Networks.multi.IPAddress}}", "c1")
		for _, name := range []string{"c1", "web", "c1.multi"} {
			took := eventually(t, 30*time.Second, "c2 on h2 resolves "+name, func() error {
				out, err := h2.d.Docker(ctx, "exec", "c2", "nslookup", name)
				if err != nil || !strings.Contains(out, ip1) {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
			t.Logf("c2 on h2 resolves %s to c1's %s (%s)", name, ip1, took.Round(time.Millisecond))
		}
		out := h2.docker(t, ctx, "exec", "c2", "ping", "-c", "1", "-W", "2", "c1")
		if !strings.Contains(out, ip1) {
			t.Errorf("ping c1 from h2 went to another address:\n%s", out)
		}

		// From the underlay: h2's host namespace routes the address to h1.
		a := netip.MustParseAddr(dockerDNS)
		err := h2.h.NS.Do(func() error {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: netlink.NewIPNet(a.AsSlice()),
				Gw: netip.MustParseAddr("192.0.2.1").AsSlice()})
		})
		if err != nil {
			t.Fatal(err)
		}
		q := new(dns.Msg).SetQuestion("c1.", dns.TypeA)
		err = h2.h.NS.Do(func() error {
			c := &dns.Client{Timeout: 2 * time.Second}
			_, _, err := c.ExchangeContext(context.Background(), q, dockerDNS+":53")
			return err
		})
		if err == nil {
			t.Errorf("docker-dns on h1 answered a machine of the underlay")
		}

		h1.docker(t, ctx, "rm", "-f", "c1")
		eventually(t, 30*time.Second, "c1 no longer resolves on h2", func() error {
			out, err := h2.d.Docker(ctx, "exec", "c2", "nslookup", "c1")
			if err == nil && strings.Contains(out, ip1) {
				return fmt.Errorf("still: %s", out)
			}
			return nil
		})
	})
}
