package dockerd

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Docker's classic overlay on Docker 20.10: an etcd (v2 API) on the
// underlay as the cluster store of two daemons; an overlay network made
// on host 1 is seen on host 2, and containers on the two hosts ping each
// other by name (VXLAN between the hosts, names through the embedded DNS
// and the daemons' gossip).
func TestClassicOverlay(t *testing.T) {
	ctx := testCtx(t)
	engine, err := Legacy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, hosts := underlay(t, "dko", "h1", "h2")
	st, err := u.AddHost("st", netip.MustParsePrefix("192.0.2.100/24"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := StartEtcdV2(ctx, st.NS, st.Addr.Addr().String(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	d1 := start(t, ctx, engine, hosts[0], "172.31.1.1/24", ClusterStoreArgs(store.URL())...)
	d2 := start(t, ctx, engine, hosts[1], "172.31.2.1/24", ClusterStoreArgs(store.URL())...)

	t0 := time.Now()
	docker(t, ctx, d1, "network", "create", "-d", "overlay", "--subnet", "172.30.1.0/24", "multi")
	for {
		out := docker(t, ctx, d2, "network", "ls", "--filter", "driver=overlay", "--format", "{{.Name}} {{.Scope}}")
		if out == "multi global\n" {
			break
		}
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("overlay network made on h1 not seen on h2 after 30s; h2 has:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("network made on h1 seen on h2 after %s", time.Since(t0).Round(time.Millisecond))

	docker(t, ctx, d1, "run", "-d", "--network", "multi", "--name", "c1", BusyboxImage, "sleep", "600")
	docker(t, ctx, d2, "run", "-d", "--network", "multi", "--name", "c2", BusyboxImage, "sleep", "600")
	t0 = time.Now()
	for _, p := range []struct {
		d        *Daemon
		from, to string
	}{{d2, "c2", "c1"}, {d1, "c1", "c2"}} {
		var out string
		var err error
		for time.Since(t0) < time.Minute {
			if out, err = p.d.Docker(ctx, "exec", p.from, "ping", "-c", "1", "-W", "2", p.to); err == nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil || !strings.Contains(out, "172.30.1.") {
			t.Errorf("%s pings %s by name over the overlay: %v\n%s\nlog of %s:\n%s", p.from, p.to, err, out,
				p.d.Hostname, p.d.Log(20))
		}
	}
	t.Logf("containers on the two hosts ping each other %s after they started", time.Since(t0).Round(time.Millisecond))
}
