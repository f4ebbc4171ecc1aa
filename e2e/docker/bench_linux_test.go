package docker

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/dockerd"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// BenchmarkDockerOverlay measures meshnet's Docker plugin beside Docker's
// own classic overlay in one run, on the same two hosts, the same dockerds
// (Docker 20.10, the last with --cluster-store) and the same store (an etcd
// 3.4 serving the classic overlay's v2 API and meshnet's v3 one); the
// agents gossip on 7947, as serf holds 7946. Per iteration, on h1, one
// container of each: `docker run --rm --net none … true` (the baseline),
// and on each network `docker run --rm --net NET … wget` of a web server
// in a container on h2, which returns once the server has answered: the
// network's share is the difference of the p50s. Also: `docker network
// create` on h1 until h2's dockerd has it, and TCP throughput between
// containers on the two hosts (one stream, 3 s).
//
//	go test -run XXX -bench DockerOverlay -benchtime 20x ./e2e/docker/
func BenchmarkDockerOverlay(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	engine, err := dockerd.Legacy(ctx)
	if err != nil {
		b.Fatal(err)
	}
	bins, err := testenv.AgentBinaries(ctx)
	if err != nil {
		b.Fatal(err)
	}
	u := newUnderlay(b, "dkx")
	st, err := u.AddHost("st", netip.MustParsePrefix("192.0.2.100/24"))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	store, err := dockerd.StartEtcdV2(ctx, st.NS, "192.0.2.100", filepath.Join(dir, "store"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := store.Close(); err != nil {
			b.Error(err)
		}
	})
	var hosts []*host
	for i := range 2 {
		name := fmt.Sprintf("h%d", i+1)
		nh, err := u.AddHost(name, netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i+1)))
		if err != nil {
			b.Fatal(err)
		}
		hdir := filepath.Join(dir, name)
		d, err := dockerd.Start(ctx, engine, nh.NS, dockerd.Options{Hostname: "dkx-" + name, Dir: filepath.Join(hdir, "docker"),
			Bip: fmt.Sprintf("172.31.%d.1/24", i+1), DNS: []string{dockerDNS}, Args: dockerd.ClusterStoreArgs(store.URL())})
		if err != nil {
			b.Fatal(err)
		}
		h := &host{name: name, h: nh, d: d, dir: hdir, log: filepath.Join(hdir, "agent.log"), bin: bins.Agent,
			store: "etcd://192.0.2.100:2379", gossipPort: 7947}
		b.Cleanup(func() { h.close(b) })
		if _, err := dockerd.ImportBusybox(ctx, d); err != nil {
			b.Fatal(err)
		}
		h.startAgent(b, ctx)
		hosts = append(hosts, h)
	}
	h1, h2 := hosts[0], hosts[1]

	// docker network create on h1 → in h2's dockerd.
	createTook := map[string]time.Duration{}
	for _, n := range []struct{ name, subnet string }{{"classic", "172.30.1.0/24"}, {"mesh", "10.91.0.0/24"}} {
		args := []string{"network", "create", "--subnet", n.subnet}
		if n.name == "classic" {
			args = append(args, "-d", "overlay", n.name)
		} else {
			args = append(args, "-d", "meshnet", "--ipam-driver", "meshnet", n.name)
		}
		t0 := time.Now()
		h1.docker(b, ctx, args...)
		eventually(b, 30*time.Second, n.name+" in h2's dockerd", func() error {
			_, err := h2.d.Docker(ctx, "network", "inspect", n.name)
			return err
		})
		createTook[n.name] = time.Since(t0)
	}

	// A web server on h2 on each network.
	servers := map[string]string{}
	for _, n := range []string{"classic", "mesh"} {
		c := "web-" + n
		h2.docker(b, ctx, "run", "-d", "--net", n, "--name", c, dockerd.BusyboxImage,
			"sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www")
		servers[n] = h2.docker(b, ctx, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+n+"\").IPAddress}}", c)
	}

	times := map[string][]time.Duration{}
	run := func(kind string, args ...string) {
		t0 := time.Now()
		h1.docker(b, ctx, append([]string{"run", "--rm"}, args...)...)
		times[kind] = append(times[kind], time.Since(t0))
	}
	b.ResetTimer()
	for range b.N {
		run("none", "--net", "none", dockerd.BusyboxImage, "true")
		for _, n := range []string{"classic", "mesh"} {
			run(n, "--net", n, dockerd.BusyboxImage, "sh", "-c",
				"until wget -q -O /dev/null http://"+servers[n]+"/; do usleep 5000; done")
		}
	}
	b.StopTimer()

	// Throughput between containers on the two hosts, from the test
	// through their namespaces.
	gbps := map[string]float64{}
	for _, n := range []string{"classic", "mesh"} {
		h1.docker(b, ctx, "run", "-d", "--net", n, "--name", "src-"+n, dockerd.BusyboxImage, "sleep", "600")
		from, err := containerNS(ctx, h1, "src-"+n)
		if err != nil {
			b.Fatal(err)
		}
		to, err := containerNS(ctx, h2, "web-"+n)
		if err != nil {
			b.Fatal(err)
		}
		bps, err := nshost.Throughput(ctx, from, to, servers[n]+":5201", 3*time.Second)
		from.Close()
		to.Close()
		if err != nil {
			b.Fatalf("throughput on %s: %v", n, err)
		}
		gbps[n] = bps * 8 / 1e9
	}

	p := func(kind string, q float64) float64 {
		ds := slices.Clone(times[kind])
		slices.Sort(ds)
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	shareMesh, shareClassic := p("mesh", 0.5)-p("none", 0.5), p("classic", 0.5)-p("none", 0.5)
	b.ReportMetric(p("none", 0.5), "none-p50-ms")
	b.ReportMetric(p("mesh", 0.5), "meshnet-p50-ms")
	b.ReportMetric(p("mesh", 0.99), "meshnet-p99-ms")
	b.ReportMetric(p("classic", 0.5), "classic-p50-ms")
	b.ReportMetric(p("classic", 0.99), "classic-p99-ms")
	b.ReportMetric(shareMesh/shareClassic, "share-ratio")
	b.ReportMetric(float64(createTook["mesh"].Milliseconds()), "meshnet-create-ms")
	b.ReportMetric(float64(createTook["classic"].Milliseconds()), "classic-create-ms")
	b.ReportMetric(gbps["mesh"], "meshnet-Gbit/s")
	b.ReportMetric(gbps["classic"], "classic-Gbit/s")
	b.ReportMetric(gbps["mesh"]/gbps["classic"], "throughput-ratio")
	b.Logf("docker run → TCP answer from h2, p50/p99: meshnet %.0f/%.0f ms, classic overlay %.0f/%.0f ms, --net none %.0f ms; "+
		"network's share (p50 − none): meshnet %.0f ms, classic %.0f ms (ratio %.2f); create on h1 → in h2's dockerd: meshnet %s, classic %s; "+
		"TCP between hosts: meshnet %.2f Gbit/s, classic %.2f Gbit/s (ratio %.2f)",
		p("mesh", 0.5), p("mesh", 0.99), p("classic", 0.5), p("classic", 0.99), p("none", 0.5),
		shareMesh, shareClassic, shareMesh/shareClassic, createTook["mesh"].Round(time.Millisecond), createTook["classic"].Round(time.Millisecond),
		gbps["mesh"], gbps["classic"], gbps["mesh"]/gbps["classic"])
}

// containerNS opens the network namespace of a running container.
func containerNS(ctx context.Context, h *host, name string) (*nshost.NS, error) {
	out, err := h.d.Docker(ctx, "inspect", "-f", "{{.State.Pid}}", name)
	if err != nil {
		return nil, err
	}
	return nshost.OpenPath(name, "/proc/"+strings.TrimSpace(out)+"/ns/net")
}
