package dockerd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/nshost"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// underlay makes the hosts' switch and hosts named NAME at 192.0.2.N/24,
// in order, and removes them at the end of the test.
func underlay(t *testing.T, tag string, names ...string) (*nshost.Underlay, []*nshost.Host) {
	t.Helper()
	prefix := nshost.Prefix(tag)
	u, err := nshost.NewUnderlay(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Error(err)
		}
		if err := nshost.RemoveAll(prefix); err != nil {
			t.Error(err)
		}
	})
	var hosts []*nshost.Host
	for i, name := range names {
		h, err := u.AddHost(name, netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	return u, hosts
}

// start starts a daemon of engine on host h (named after it) with
// docker0 at bip, closed at the end of the test; it imports the busybox
// image.
func start(t *testing.T, ctx context.Context, engine Engine, h *nshost.Host, bip string, args ...string) *Daemon {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "docker")
	d, err := Start(ctx, engine, h.NS, Options{Hostname: h.Name, Dir: dir, Bip: bip, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("closing %s on %s: %v", engine.Name, h.Name, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s is still there after Close (%v)", dir, err)
		}
		if dirs := cgroupDirs(d.cgroup); len(dirs) > 0 {
			t.Errorf("cgroups left after Close: %v", dirs)
		}
	})
	t.Logf("%s on %s answers GET /_ping %s after it was started", engine.Name, h.Name, d.StartTime.Round(time.Millisecond))
	t0 := time.Now()
	if _, err := ImportBusybox(ctx, d); err != nil {
		t.Fatal(err)
	}
	t.Logf("busybox imported into %s in %s", h.Name, time.Since(t0).Round(time.Millisecond))
	return d
}

func docker(t *testing.T, ctx context.Context, d *Daemon, args ...string) string {
	t.Helper()
	out, err := d.Docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// httpGet fetches url from namespace ns, retrying for 20s while it
// fails.
func httpGet(ctx context.Context, ns *nshost.NS, url string) (string, error) {
	hc := &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: ns.Dial, DisableKeepAlives: true}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b), nil
			}
			err = fmt.Errorf("status %d, %v: %q", resp.StatusCode, rerr, b)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("GET %s from %s: %w", url, ns.Name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Debian's Docker 20.10 on two namespace hosts: containers on the
// default bridge and without network; a port published on host 1 reached
// from host 2 and from a container on host 2, through Docker's own
// iptables rules (FORWARD DROP, DNAT, MASQUERADE) in each host.
func TestLegacyTwoHosts(t *testing.T) {
	ctx := testCtx(t)
	engine, err := Legacy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, hosts := underlay(t, "dkl", "h1", "h2")
	d1 := start(t, ctx, engine, hosts[0], "172.31.1.1/24")
	d2 := start(t, ctx, engine, hosts[1], "172.31.2.1/24")

	if v := strings.TrimSpace(docker(t, ctx, d1, "version", "--format", "{{.Server.Version}}")); !strings.HasPrefix(v, "20.10.") {
		t.Errorf("server version %q, want 20.10.*", v)
	}
	if name := strings.TrimSpace(docker(t, ctx, d2, "info", "--format", "{{.Name}}")); name != hosts[1].Name {
		t.Errorf("docker info on h2 names %q, want %q", name, hosts[1].Name)
	}
	t0 := time.Now()
	out := docker(t, ctx, d1, "run", "--rm", BusyboxImage, "sh", "-c", "ip addr")
	t.Logf("docker run --rm took %s", time.Since(t0).Round(time.Millisecond))
	if !strings.Contains(out, "inet 172.31.1.2/24") {
		t.Errorf("container on the default bridge of h1:\n%s", out)
	}
	out = docker(t, ctx, d1, "run", "--rm", "--net", "none", BusyboxImage, "sh", "-c", "ip addr")
	if !strings.Contains(out, "inet 127.0.0.1/8") || strings.Contains(out, "eth0") {
		t.Errorf("container with --net none:\n%s", out)
	}

	// Docker's default firewall is in place, in the host namespace only.
	if b, err := d1.Command(ctx, "iptables", "-S", "FORWARD").CombinedOutput(); err != nil ||
		!strings.Contains(string(b), "-P FORWARD DROP") || !strings.Contains(string(b), "DOCKER-USER") {
		t.Errorf("iptables -S FORWARD in h1: %v\n%s", err, b)
	}

	docker(t, ctx, d1, "run", "-d", "--name", "web", "-p", "8080:80", BusyboxImage, "httpd", "-f", "-p", "80", "-h", "/www")
	if body, err := httpGet(ctx, hosts[1].NS, "http://192.0.2.1:8080/"); err != nil || body != BusyboxPage {
		t.Errorf("h2 → published port of h1: %q, %v", body, err)
	}
	// (busybox 1.35's wget -T segfaults: no timeout option here.)
	out, err = d2.Docker(ctx, "run", "--rm", BusyboxImage, "wget", "-q", "-O", "-", "http://192.0.2.1:8080/")
	if err != nil || out != BusyboxPage {
		t.Errorf("container on h2 → published port of h1: %q, %v", out, err)
	}

	// Namespaces the test makes and deletes after the daemon started are
	// mounted and unmounted in its mount namespace too (slave
	// propagation): a deleted one is not kept alive there.
	late, err := nshost.NewNS(hosts[0].Name + "-late")
	if err != nil {
		t.Fatal(err)
	}
	mounted := func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", d1.PID()))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), " "+late.Path()+" ")
	}
	if !mounted() {
		t.Errorf("%s, made after the daemon started, is not mounted in its mount namespace", late.Path())
	}
	if err := late.Close(); err != nil {
		t.Fatal(err)
	}
	if mounted() {
		t.Errorf("%s, deleted, is still mounted in the daemon's mount namespace", late.Path())
	}

	// Command runs in the daemon's namespaces: its host name, and
	// PluginDir as /run/docker/plugins.
	if err := os.WriteFile(filepath.Join(d1.PluginDir, "probe.spec"), []byte("unix:///x.sock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := d1.Command(ctx, "sh", "-c", "hostname; cat /run/docker/plugins/probe.spec").CombinedOutput()
	if want := hosts[0].Name + "\nunix:///x.sock\n"; err != nil || string(b) != want {
		t.Errorf("Command in h1's dockerd namespaces: %q (%v), want %q", b, err, want)
	}
}

// A current engine (Docker 29, built from moby's module) on a namespace
// host: a container on the default bridge, a compose project, and two
// containers on a user-defined bridge network finding each other by
// name.
func TestModern(t *testing.T) {
	ctx := testCtx(t)
	engine, err := Modern(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s built (or found cached) in %s", engine.Name, ModernBuildTime.Round(time.Millisecond))
	_, hosts := underlay(t, "dkm", "h1")
	d := start(t, ctx, engine, hosts[0], "172.31.3.1/24")

	if v := strings.TrimSpace(docker(t, ctx, d, "version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}")); v != ModernVersion+" 1.54" {
		t.Errorf("server version and API %q, want %s 1.54", v, ModernVersion)
	}
	if out := docker(t, ctx, d, "run", "--rm", BusyboxImage, "sh", "-c", "ip addr"); !strings.Contains(out, "inet 172.31.3.2/24") {
		t.Errorf("container on the default bridge:\n%s", out)
	}
	if out := docker(t, ctx, d, "network", "ls", "--format", "{{.Name}} {{.Driver}}"); !strings.Contains(out, "bridge bridge\n") ||
		!strings.Contains(out, "none null\n") {
		t.Errorf("docker network ls:\n%s", out)
	}
	// docker-compose 1.29 drives Docker 29 too.
	proj := t.TempDir()
	compose := "services:\n  web:\n    image: " + BusyboxImage + "\n    command: [httpd, -f, -p, '80', -h, /www]\n" +
		"  client:\n    image: " + BusyboxImage + "\n    command: [sleep, '600']\n"
	if err := os.WriteFile(filepath.Join(proj, "docker-compose.yml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Compose(ctx, proj, "-p", "proj", "up", "-d"); err != nil {
		t.Fatal(err)
	}
	if out, err := d.Docker(ctx, "exec", "proj_client_1", "wget", "-q", "-O", "-", "http://web/"); err != nil || out != BusyboxPage {
		t.Errorf("compose service client → web by name: %q, %v", out, err)
	}
	if _, err := d.Compose(ctx, proj, "-p", "proj", "down", "-t", "1"); err != nil {
		t.Error(err)
	}

	docker(t, ctx, d, "network", "create", "--subnet", "172.30.3.0/24", "local")
	docker(t, ctx, d, "run", "-d", "--network", "local", "--name", "peer", BusyboxImage, "sleep", "600")
	if out, err := d.Docker(ctx, "run", "--rm", "--network", "local", BusyboxImage, "ping", "-c", "1", "-W", "5", "peer"); err != nil ||
		!strings.Contains(out, "172.30.3.2") {
		t.Errorf("ping peer by name on a user-defined bridge: %v\n%s", err, out)
	}
}

// A daemon killed with its containers running leaves its containerd,
// shim, docker-proxy and container processes behind, and whatever the
// test started in its namespaces; Close ends them by PID, removes its cgroups and its directory (checked by start's
// cleanup), and reports that the daemon had died.
func TestCloseAfterKill(t *testing.T) {
	ctx := testCtx(t)
	engine, err := Legacy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, hosts := underlay(t, "dkk", "h1")
	d := start(t, ctx, engine, hosts[0], "172.31.1.1/24")
	docker(t, ctx, d, "run", "-d", "-p", "8080:80", BusyboxImage, "httpd", "-f", "-p", "80")
	sleeper, err := d.StartProcess("sleep", []string{"600"}, filepath.Join(t.TempDir(), "sleep.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sleeper.Kill)
	mntNS, cgroup := d.mntNS, d.cgroup
	for i := 0; !slices.Contains(procsInMountNS(mntNS), sleeper.PID()); i++ { // once nsenter has entered
		if i == 100 {
			t.Fatalf("a process started with StartProcess is not in dockerd's mount namespace")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(procsInMountNS(mntNS)) < 4 || len(cgroupProcs(cgroup)) != 1 {
		t.Fatalf("processes in dockerd's mount namespace: %v, in its cgroup: %v",
			procsInMountNS(mntNS), cgroupProcs(cgroup))
	}
	d.proc.Kill()
	err = d.Close()
	if err == nil || !strings.Contains(err.Error(), "had exited by itself") {
		t.Errorf("Close of a killed daemon: %v", err)
	}
	if p, c := procsInMountNS(mntNS), cgroupProcs(cgroup); len(p)+len(c) > 0 {
		t.Errorf("left running: %v in the mount namespace, %v in the cgroup", p, c)
	}
	select {
	case <-sleeper.Exited():
	case <-time.After(5 * time.Second):
		t.Errorf("the process started with StartProcess still runs after Close")
	}
}

// A daemon that cannot start makes Start fail at once with the end of
// its log, leaving nothing running.
func TestStartFailure(t *testing.T) {
	ctx := testCtx(t)
	engine, err := Legacy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, hosts := underlay(t, "dkf", "h1")
	d, err := Start(ctx, engine, hosts[0].NS, Options{Hostname: hosts[0].Name, Dir: t.TempDir(),
		Args: []string{"--no-such-flag"}})
	if err == nil {
		d.Close()
		t.Fatal("dockerd --no-such-flag started")
	}
	if msg := err.Error(); !strings.Contains(msg, "exited with status") || !strings.Contains(msg, "no-such-flag") {
		t.Errorf("Start's error: %v", err)
	} else {
		t.Logf("Start's error, as expected: %v", err)
	}
}

// Install leaves every package installed; once they are, it only asks
// dpkg.
func TestInstall(t *testing.T) {
	ctx := testCtx(t)
	if err := Install(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := EnsureDebian(ctx, DebianPackages...); err != nil {
		t.Fatal(err)
	}
	t.Logf("EnsureDebian of installed packages took %s", time.Since(t0).Round(time.Millisecond))
	if missing := missingDebian(ctx, DebianPackages); len(missing) > 0 {
		t.Errorf("not installed after Install: %v", missing)
	}
}
