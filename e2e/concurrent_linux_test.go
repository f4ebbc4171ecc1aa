package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/cluster"
)

// Fifty networks created from three hosts at once all succeed, with
// distinct VNIs and non-overlapping subnets; one name raced from three
// hosts is won by exactly one; sandboxes created at once on one network
// from every host get distinct addresses.
func TestConcurrentCreate(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCluster(t, store, 3)
		ctx := testCtx(t)
		hosts := c.Hosts()

		const count = 50
		names := make([]string, count)
		results := make([]cluster.Result, count)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range names {
			names[i] = fmt.Sprintf("net%02d", i)
			h := hosts[i%len(hosts)]
			wg.Go(func() { results[i] = h.AgentCtl("network", "create", "-d", "overlay", names[i]) })
		}
		wg.Wait()
		t.Logf("%d concurrent network creates from %d hosts took %s", count, len(hosts), time.Since(start).Round(time.Millisecond))
		for i, r := range results {
			if r.Code != 0 {
				t.Errorf("network create %s on %s: %s", names[i], hosts[i%len(hosts)].Node, r)
			}
		}
		if t.Failed() {
			t.FailNow()
		}

		// Every host sees the same fifty networks.
		first := inspectNetworks(t, hosts[0], names...)
		ids := map[string]string{}
		vnis := map[uint32]string{}
		var subnets []netip.Prefix
		for _, n := range first {
			ids[n.Name] = n.ID
			if other, dup := vnis[n.VNI]; dup {
				t.Errorf("VNI %d given to %s and %s", n.VNI, other, n.Name)
			}
			vnis[n.VNI] = n.Name
			s := subnetOf(t, n)
			for i, o := range subnets {
				if o.Overlaps(s) {
					t.Errorf("subnet %s of %s overlaps %s of %s", s, n.Name, o, first[i].Name)
				}
			}
			subnets = append(subnets, s)
		}
		for _, h := range hosts[1:] {
			err := eventually(ctx, func() error {
				seen := map[string]string{}
				for _, n := range networkLS(t, h) {
					seen[n.Name] = n.ID
				}
				for name, id := range ids {
					if seen[name] != id {
						return fmt.Errorf("%s listed with id %q, want %s", name, seen[name], id)
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("network ls on %s: %v", h.Node, err)
			}
		}
		kv, err := c.Store()
		if err != nil {
			t.Fatal(err)
		}
		keys, err := storeKeys(ctx, kv)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for k := range keys {
			top, _, _ := strings.Cut(k, "/")
			counts[top]++
		}
		for _, top := range []string{"networks", "names", "vni", "subnets"} {
			if counts[top] != count {
				t.Errorf("store has %d keys under %s/, want %d", counts[top], top, count)
			}
		}

		// One name raced from every host: exactly one wins.
		raced := make([]cluster.Result, len(hosts))
		for i, h := range hosts {
			wg.Go(func() { raced[i] = h.AgentCtl("network", "create", "-d", "overlay", "dup") })
		}
		wg.Wait()
		wins := 0
		for i, r := range raced {
			if r.Code == 0 {
				wins++
				continue
			}
			line := refused(t, hosts[i], r, "network", "create", "-d", "overlay", "dup")
			if !strings.Contains(line, "already exists") {
				t.Errorf("losing create of dup on %s says %q, want \"already exists\"", hosts[i].Node, line)
			}
		}
		for i, r := range raced {
			t.Logf("create dup on %s: exit %d %s", hosts[i].Node, r.Code, strings.TrimSpace(r.Stderr))
		}
		if wins != 1 {
			t.Errorf("%d of %d concurrent creates of dup succeeded, want 1: %v", wins, len(hosts), raced)
		}

		// Sandboxes created at once on one network from every host get
		// distinct addresses of its subnet.
		const perHost = 3
		sbNames := make([]string, 0, perHost*len(hosts))
		for i := range perHost * len(hosts) {
			name := c.Name(fmt.Sprintf("s%d", i))
			sbNames = append(sbNames, name)
			h := hosts[i%len(hosts)]
			wg.Go(func() { results[i] = h.AgentCtl("sandbox", "create", "--net", "net00", name) })
		}
		wg.Wait()
		subnet := subnetOf(t, first[0])
		ips := map[netip.Addr]string{}
		for i, name := range sbNames {
			h := hosts[i%len(hosts)]
			if results[i].Code != 0 {
				t.Errorf("sandbox create %s on %s: %s", name, h.Node, results[i])
				continue
			}
			ip := sandboxIP(t, h, name, "net00")
			if other, dup := ips[ip]; dup {
				t.Errorf("address %s given to %s and %s", ip, other, name)
			}
			if !subnet.Contains(ip) {
				t.Errorf("address %s of %s outside %s", ip, name, subnet)
			}
			ips[ip] = name
		}
		ipKeys := 0
		keys, err = storeKeys(ctx, kv)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys {
			if strings.HasPrefix(k, "ips/"+ids["net00"]+"/") {
				ipKeys++
			}
		}
		if ipKeys < len(ips) {
			t.Errorf("store has %d IP leases of net00, want at least %d", ipKeys, len(ips))
		}
	})
}
