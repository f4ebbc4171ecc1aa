package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/cluster"
)

// podmanHost is a Podman of its own on a cluster host: configuration,
// storage, state and locks under a temporary directory, the CNI backend
// with meshnet's conflists, runc with cgroupfs (crun's setrlimit and
// systemd cgroups do not work on the test machines).
type podmanHost struct {
	*cniHost
	conf, storage, rootfs string
}

func newPodmanHost(t *testing.T, h *cniHost, rootfs string) *podmanHost {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "podman-"+h.Node)
	for _, d := range []string{"root", "runroot", "tmp", "volumes"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	p := &podmanHost{cniHost: h, conf: filepath.Join(dir, "containers.conf"), storage: filepath.Join(dir, "storage.conf"), rootfs: rootfs}
	conf := fmt.Sprintf(`[containers]
netns = "bridge"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "%[1]s/tmp/events.log"
tmp_dir = "%[1]s/tmp"
volume_path = "%[1]s/volumes"
static_dir = "%[1]s/root/libpod"
lock_type = "file"
no_pivot_root = false

[network]
network_backend = "cni"
cni_plugin_dirs = [%[2]s]
network_config_dir = "%[3]s"
default_network = "multi"
`, dir, quoteList(filepath.SplitList(h.bins.Path)), h.dir)
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\nrunroot = \"%[1]s/runroot\"\ngraphroot = \"%[1]s/root\"\n", dir)
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.storage, []byte(storage), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever a failed test left running; then the storage, whose
		// vfs layers podman owns.
		p.podman(context.Background(), "rm", "-f", "-a", "-t", "0")
	})
	return p
}

func quoteList(items []string) string {
	var q []string
	for _, s := range items {
		q = append(q, fmt.Sprintf("%q", s))
	}
	return strings.Join(q, ", ")
}

// podman runs podman ARGS… in the host's namespace.
func (p *podmanHost) podman(ctx context.Context, args ...string) cluster.Result {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf, "CONTAINERS_STORAGE_CONF="+p.storage,
		"CONTAINERS_REGISTRIES_CONF=/dev/null")
	return runIn(p.NS, cmd)
}

// run starts a container from the busybox rootfs on network multi.
func (p *podmanHost) run(t *testing.T, ctx context.Context, name string, cmd ...string) {
	t.Helper()
	args := append([]string{"run", "-d", "--name", name, "--network", "multi", "--dns", "127.0.0.11",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--rootfs", p.rootfs}, cmd...)
	if r := p.podman(ctx, args...); r.Code != 0 {
		t.Fatalf("podman %s on %s: %s", strings.Join(args, " "), p.Node, r)
	}
}

// busyboxRootfs is a root filesystem of Debian's busybox-static alone.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox-static is not installed (make test installs it): %v", err)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "www"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep", "httpd", "wget", "ping", "nslookup", "ip", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "index.html"), []byte("hello from meshnet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A real runtime on meshnet: Podman 4 (CNI backend, runc) on two hosts
// runs containers on the overlay network through meshnet's plugin; they
// ping each other, talk TCP (HTTP) across the hosts and find each other
// by container name through the embedded DNS; `podman rm` gives their
// addresses back.
func TestPodman(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is not installed (make test installs it): %v", err)
	}
	c := newCluster(t, cluster.StoreEmbedded, 2)
	ctx := testCtx(t)
	bins, err := testenv.CNIBinaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := busyboxRootfs(t)
	ctl(t, c.Host(0), "network", "create", "-d", "overlay", "--subnet", "10.78.0.0/24", "multi")
	var hosts []*podmanHost
	for i := range 2 {
		h := newCNIHost(t, c.Host(i), bins)
		h.conflist(t, "1.0.0", "multi", "")
		hosts = append(hosts, newPodmanHost(t, h, rootfs))
	}
	p1, p2 := hosts[0], hosts[1]
	web, client := c.Name("web"), c.Name("client")
	p1.run(t, ctx, web, "/bin/httpd", "-f", "-p", "8080", "-h", "/www")
	p2.run(t, ctx, client, "/bin/sleep", "600")

	ipOf := func(p *podmanHost, name string) netip.Addr {
		t.Helper()
		r := p.podman(ctx, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
		ip, err := netip.ParseAddr(strings.TrimSpace(r.Stdout))
		if r.Code != 0 || err != nil || !netip.MustParsePrefix("10.78.0.0/24").Contains(ip) {
			t.Fatalf("podman inspect %s: %s", name, r)
		}
		return ip
	}
	ipWeb, ipClient := ipOf(p1, web), ipOf(p2, client)
	exec := func(p *podmanHost, name string, cmd ...string) cluster.Result {
		return p.podman(ctx, append([]string{"exec", name}, cmd...)...)
	}
	if r := exec(p2, client, "ping", "-c", "1", "-W", "5", ipWeb.String()); r.Code != 0 {
		t.Errorf("client on n2 pings web on n1: %s", r)
	}
	if r := exec(p1, web, "ping", "-c", "1", "-W", "5", ipClient.String()); r.Code != 0 {
		t.Errorf("web on n1 pings client on n2: %s", r)
	}
	if r := exec(p2, client, "wget", "-q", "-O", "-", "http://"+ipWeb.String()+":8080/"); r.Code != 0 || r.Stdout != "hello from meshnet\n" {
		t.Errorf("client on n2 → web on n1 over HTTP: %s", r)
	}
	if r := exec(p2, client, "nslookup", web, "127.0.0.11"); r.Code != 0 || !strings.Contains(r.Stdout, ipWeb.String()) {
		t.Errorf("client on n2 resolves %s through the embedded DNS: %s", web, r)
	}

	// What the agents show: the containers' sandboxes, by container id.
	sbs, err := p1.Client().SandboxList(ctx)
	if err != nil || len(sbs) != 1 || sbs[0].Name != web || len(sbs[0].ContainerID) != 64 {
		t.Errorf("n1's sandboxes: %+v (%v), want web's, named after the container", sbs, err)
	}

	for _, x := range []struct {
		p    *podmanHost
		name string
	}{{p1, web}, {p2, client}} {
		if r := x.p.podman(ctx, "rm", "-f", "-t", "0", x.name); r.Code != 0 {
			t.Errorf("podman rm %s: %s", x.name, r)
		}
		if sbs, err := x.p.Client().SandboxList(ctx); err != nil || len(sbs) != 0 {
			t.Errorf("after podman rm %s, the agent of %s has %+v (%v)", x.name, x.p.Node, sbs, err)
		}
	}
	// Their addresses are free again: a container asking for web's gets it.
	again := c.Name("again")
	if r := p2.podman(ctx, "run", "-d", "--name", again, "--network", "multi", "--ip", ipWeb.String(),
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--rootfs", rootfs, "/bin/sleep", "600"); r.Code != 0 {
		t.Errorf("podman run --ip %s after web was removed: %s", ipWeb, r)
	}
	if r := p2.podman(ctx, "rm", "-f", "-t", "0", again); r.Code != 0 {
		t.Errorf("podman rm %s: %s", again, r)
	}
}
