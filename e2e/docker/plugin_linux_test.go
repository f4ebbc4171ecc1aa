package docker

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/testenv/dockerd"
)

// One `docker network create -d meshnet --ipam-driver meshnet` on h1 is a
// meshnet global network and a Docker network on every host (three);
// containers on the hosts get distinct addresses from the cluster's
// leases and talk across VXLAN through dockerd's own filter (FORWARD
// policy DROP); `docker network rm` on h2 removes it everywhere. A
// network made with agentctl appears in every Docker too.
func TestNetworkAcrossHosts(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		hosts := cluster(t, ctx, engine, "dkn"+tag, 3)
		h1, h2 := hosts[0], hosts[1]
		h1.docker(t, ctx, "network", "create", "-d", "meshnet", "--ipam-driver", "meshnet", "multi")
		// The meshnet network is made once dockerd has stored the Docker
		// network under its name: a moment after the command.
		var n api.Network
		took := eventually(t, 10*time.Second, "meshnet network multi", func() error {
			var err error
			n, err = h1.api.NetworkInspect(ctx, "multi")
			return err
		})
		t.Logf("meshnet network multi made %s after docker network create returned", took.Round(time.Millisecond))
		if n.Scope != "global" || n.Driver != "overlay" || n.VNI == 0 || len(n.IPAM.Config) != 1 {
			t.Fatalf("meshnet network multi: %+v", n)
		}
		for _, h := range hosts[1:] {
			took = eventually(t, 30*time.Second, "network multi in "+h.name+"'s dockerd", func() error {
				if got := h.networks(t, ctx); !slices.Equal(got, []string{"multi"}) {
					return fmt.Errorf("%s has %v", h.name, got)
				}
				return nil
			})
			t.Logf("network made on h1 is in %s's dockerd %s later", h.name, took.Round(time.Millisecond))
			subnet := h.docker(t, ctx, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "multi")
			if subnet != n.IPAM.Config[0].Subnet {
				t.Errorf("%s's Docker network has subnet %q, the meshnet network %q", h.name, subnet, n.IPAM.Config[0].Subnet)
			}
		}

		ips := map[string]string{}
		for i, h := range hosts {
			c := fmt.Sprintf("c%d", i+1)
			h.docker(t, ctx, "run", "-d", "--net", "multi", "--name", c, dockerd.BusyboxImage, "sleep", "600")
			ip := h.docker(t, ctx, "inspect", "-f", "{{.NetworkSettings.Networks.multi.IPAddress}}", c)
			for other, oip := range ips {
				if oip == ip || ip == "" {
					t.Fatalf("%s and %s got addresses %q and %q", c, other, ip, oip)
				}
			}
			ips[c] = ip
		}
		for i, h := range hosts {
			from, to := fmt.Sprintf("c%d", i+1), fmt.Sprintf("c%d", (i+1)%len(hosts)+1)
			took := eventually(t, 30*time.Second, from+" pings "+to, func() error {
				out, err := h.d.Docker(ctx, "exec", from, "ping", "-c", "1", "-W", "1", ips[to])
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
			t.Logf("%s on %s reaches %s across VXLAN (%s)", from, h.name, to, took.Round(time.Millisecond))
		}
		mtu := h1.docker(t, ctx, "exec", "c1", "cat", "/sys/class/net/eth0/mtu")
		if mtu != fmt.Sprint(n.MTU) {
			t.Errorf("c1's eth0 has MTU %s, the network %d", mtu, n.MTU)
		}

		for i, h := range hosts {
			h.docker(t, ctx, "rm", "-f", fmt.Sprintf("c%d", i+1))
		}
		eventually(t, 10*time.Second, "the containers' leases given back", func() error {
			n, err := h1.api.NetworkInspect(ctx, "multi")
			if err != nil {
				return err
			}
			if len(n.Containers) > 0 {
				return fmt.Errorf("endpoints left: %v", n.Containers)
			}
			return nil
		})
		h2.docker(t, ctx, "network", "rm", "multi")
		if _, err := h1.api.NetworkInspect(ctx, "multi"); err == nil {
			t.Errorf("meshnet network multi still there after docker network rm on h2")
		}
		for _, h := range hosts {
			eventually(t, 30*time.Second, "network multi gone from "+h.name+"'s dockerd", func() error {
				if got := h.networks(t, ctx); len(got) > 0 {
					return fmt.Errorf("%s has %v", h.name, got)
				}
				return nil
			})
		}

		// agentctl's networks are Docker's too, and go with agentctl.
		if _, err := h2.api.NetworkCreate(ctx, api.NetworkCreate{Name: "fromctl", Driver: api.DriverOverlay}); err != nil {
			t.Fatal(err)
		}
		for _, h := range hosts {
			eventually(t, 30*time.Second, "network fromctl in "+h.name+"'s dockerd", func() error {
				if got := h.networks(t, ctx); !slices.Equal(got, []string{"fromctl"}) {
					return fmt.Errorf("%s has %v", h.name, got)
				}
				return nil
			})
		}
		h1.docker(t, ctx, "run", "--rm", "--net", "fromctl", dockerd.BusyboxImage, "true")
		if err := h2.api.NetworkRemove(ctx, "fromctl"); err != nil {
			t.Fatal(err)
		}
		for _, h := range hosts {
			eventually(t, 30*time.Second, "network fromctl gone from "+h.name+"'s dockerd", func() error {
				if got := h.networks(t, ctx); len(got) > 0 {
					return fmt.Errorf("%s has %v", h.name, got)
				}
				return nil
			})
		}
	})
}

// Bad requests through docker: one sentence in docker's own output,
// nothing left on any host.
func TestBadInput(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		hosts := cluster(t, ctx, engine, "dkb"+tag, 2)
		h1, h2 := hosts[0], hosts[1]
		h1.docker(t, ctx, "network", "create", "-d", "meshnet", "--ipam-driver", "meshnet", "--subnet", "10.77.0.0/24", "taken")
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"-d", "meshnet", "bad1"}, "--ipam-driver meshnet"},
			{[]string{"-d", "meshnet", "--ipam-driver", "meshnet", "-o", "bogus=1", "bad2"}, "bogus"},
			{[]string{"-d", "meshnet", "--ipam-driver", "meshnet", "--subnet", "10.77.0.0/16", "bad3"}, "overlaps"},
			{[]string{"-d", "meshnet", "--ipam-driver", "meshnet", "--ipv6", "bad4"}, "IPv4 only"},
			{[]string{"-d", "meshnet", "--ipam-driver", "meshnet", "--ipam-opt", "x=y", "bad5"}, "--ipam-opt"},
		} {
			out, err := h1.d.Docker(ctx, append([]string{"network", "create"}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("docker network create %s: %v, %q; want an error saying %q", strings.Join(c.args, " "), err, out, c.want)
			} else if msg := err.Error()[strings.Index(err.Error(), "Error response"):]; strings.Count(strings.TrimSpace(msg), "\n") > 0 {
				t.Errorf("docker network create %s: more than one line:\n%s", strings.Join(c.args, " "), msg)
			}
		}
		h1.docker(t, ctx, "run", "-d", "--net", "taken", "--name", "c1", dockerd.BusyboxImage, "sleep", "600")
		if out, err := h1.d.Docker(ctx, "run", "-d", "--net", "taken", "--ip", "10.77.0.2", dockerd.BusyboxImage, "sleep", "600"); err == nil {
			t.Errorf("docker run --ip of c1's address: %v, %q", err, out)
		}
		// An address outside the network's subnet: Docker itself refuses
		// it (the container is created, not started).
		if out, err := h1.d.Docker(ctx, "run", "-d", "--net", "taken", "--ip", "10.77.1.5", dockerd.BusyboxImage, "sleep", "600"); err == nil ||
			!strings.Contains(err.Error(), "10.77.1.5") {
			t.Errorf("docker run --ip outside the subnet: %v, %q", err, out)
		}
		time.Sleep(2 * time.Second) // the mirror's period, twice
		for _, h := range hosts {
			nets, err := h.api.NetworkList(ctx, map[string][]string{"scope": {"global"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(nets) != 1 || nets[0].Name != "taken" {
				t.Errorf("%s: meshnet networks after the bad creates: %v", h.name, nets)
			}
			if got := h.networks(t, ctx); !slices.Equal(got, []string{"taken"}) {
				t.Errorf("%s: Docker networks after the bad creates: %v", h.name, got)
			}
		}
		n, err := h2.api.NetworkInspect(ctx, "taken")
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Containers) != 1 {
			t.Errorf("endpoints of network taken after a refused docker run: %v", n.Containers)
		}
	})
}
