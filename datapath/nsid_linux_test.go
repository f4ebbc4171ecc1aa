package datapath_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/sandbox"
	"github.com/meshnet/meshnet/testenv/nshost"
)

func identify(t *testing.T, path string) sandbox.NSID {
	t.Helper()
	id, err := sandbox.Identify(path)
	if err != nil {
		t.Fatal(err)
	}
	if id.IsZero() {
		t.Fatalf("Identify(%s) is zero", path)
	}
	return id
}

// fdPath is a path to ns's namespace through its open handle.
func fdPath(ns *nshost.NS) string { return fmt.Sprintf("/proc/self/fd/%d", ns.Handle()) }

// bindNS makes path lead to the namespace open at src (a namespace file or
// a /proc/self/fd path), replacing whatever was mounted there.
// Equivalent to: `umount -l PATH; touch PATH; mount --bind SRC PATH`.
func bindNS(t *testing.T, src, path string) {
	t.Helper()
	unmountNS(t, path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("binding %s to %s: %v", src, path, err)
	}
}

// unmountNS unmounts whatever namespace is bound at path, if any.
func unmountNS(t *testing.T, path string) {
	t.Helper()
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		t.Fatalf("unmounting %s: %v", path, err)
	}
}

// TestSandboxIdentity checks that an endpoint pinned to its namespace is
// never programmed into another one its path comes to lead to, nor through
// a missing path, while everything else in the same Apply still is; and
// that no endpoint is ever programmed into the host's own namespace.
func TestSandboxIdentity(t *testing.T) {
	tb := newTestbed(t, "ovid", 1)
	dp := tb.dps[0]
	a, b, c := tb.sandbox("a"), tb.sandbox("b"), tb.sandbox("c")
	// Whatever happens below, a's name leads to a again for the cleanup.
	t.Cleanup(func() { bindNS(t, fdPath(a), a.Path()) })

	pinned := func(id, sandbox, ifname, addr string, defaultRoute bool) datapath.LocalEndpoint {
		ep := local(tb, id, sandbox, ifname, addr, "", defaultRoute)
		ep.SandboxID = identify(t, ep.Sandbox)
		return ep
	}
	epA, epC := pinned("a", "a", "eth0", "172.17.0.2/16", true), pinned("c", "c", "eth0", "172.17.0.3/16", true)
	def := bridgeNet("def", "mesh0", "172.17.0.1/16", epA, epC)
	other := bridgeNet("other", "mesh1", "172.18.0.1/16")
	mustApply(t, dp, def, other)
	wantA := renderSandbox(t, a)
	if !strings.Contains(wantA, "addrs=172.17.0.2/16 default=172.17.0.1") {
		t.Fatalf("sandbox a:\n%s", wantA)
	}

	// a's name now leads to b, while a lives on; the same Apply adds an
	// endpoint to def and one to other.
	bindNS(t, b.Path(), a.Path())
	def.Local = append(def.Local, pinned("e", "c", "eth1", "172.17.0.4/16", false))
	other.Local = []datapath.LocalEndpoint{pinned("f", "c", "eth2", "172.18.0.2/16", false)}
	err := dp.Apply([]datapath.Network{def, other})
	if !errors.Is(err, datapath.ErrSandboxGone) || !strings.Contains(err.Error(), "endpoint a: ") ||
		!strings.Contains(err.Error(), a.Path()+" now leads to "+identify(t, b.Path()).String()) {
		t.Errorf("Apply with a's name on b = %v, want ErrSandboxGone for endpoint a", err)
	}
	if got := renderSandbox(t, b); got != "" {
		t.Errorf("sandbox b was programmed:\n%s", got)
	}
	if got := renderSandbox(t, a); got != wantA {
		t.Errorf("sandbox a changed:\n%s\nwant:\n%s", got, wantA)
	}
	host := render(t, tb.hosts[0].NS)
	for _, line := range []string{
		"veth alias=meshnet:net=def:ep=a mtu=1500 master=mesh0 up", // left to the old sandbox
		"veth alias=meshnet:net=def:ep=e mtu=1500 master=mesh0 up",
		"veth alias=meshnet:net=other:ep=f mtu=1500 master=mesh1 up",
	} {
		if !strings.Contains(host, line) {
			t.Errorf("no %q in\n%s", line, host)
		}
	}
	if got := renderSandbox(t, c); strings.Count(got, "\n") != 2 || !strings.Contains(got, "eth2 veth alias=meshnet:net=other:ep=f") {
		t.Errorf("sandbox c:\n%s", got)
	}

	// a's name is gone altogether.
	unmountNS(t, a.Path())
	if err := os.Remove(a.Path()); err != nil {
		t.Fatal(err)
	}
	err = dp.Apply([]datapath.Network{def, other})
	if !errors.Is(err, datapath.ErrSandboxGone) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), a.Path()) {
		t.Errorf("Apply with a's name missing = %v, want ErrSandboxGone and fs.ErrNotExist", err)
	}

	// Back on a, the pinned identity matches again.
	bindNS(t, fdPath(a), a.Path())
	mustApply(t, dp, def, other)
	if got := renderSandbox(t, a); got != wantA {
		t.Errorf("sandbox a after its name came back:\n%s\nwant:\n%s", got, wantA)
	}
	if got := renderSandbox(t, b); got != "" {
		t.Errorf("sandbox b was programmed:\n%s", got)
	}
}

// TestSandboxProcessPath pins an endpoint to a namespace named by a
// process's /proc path, the way other runtimes give one; once the process
// is gone, so is the sandbox, and nothing is done through the path.
func TestSandboxProcessPath(t *testing.T) {
	tb := newTestbed(t, "ovtp", 1)
	d := tb.sandbox("d")
	cmd := exec.Command("sleep", "300")
	if err := d.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := sync.OnceFunc(func() { cmd.Process.Kill(); <-exited })
	t.Cleanup(stop)
	path := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	ep := datapath.LocalEndpoint{ID: "d", Sandbox: path, SandboxID: identify(t, path), IfName: "eth0",
		Addr: pfx("172.17.0.5/16"), DefaultRoute: true}
	n := bridgeNet("def", "mesh0", "172.17.0.1/16", ep)
	mustApply(t, tb.dps[0], n)
	want := renderSandbox(t, d)
	if !strings.Contains(want, "eth0 veth alias=meshnet:net=def:ep=d ") {
		t.Fatalf("sandbox d:\n%s", want)
	}

	stop()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s still there after the process exited: %v", path, err)
	}
	if err := tb.dps[0].Apply([]datapath.Network{n}); !errors.Is(err, datapath.ErrSandboxGone) {
		t.Errorf("Apply after the process exited = %v, want ErrSandboxGone", err)
	}
	if got := renderSandbox(t, d); got != want {
		t.Errorf("sandbox d changed:\n%s\nwant:\n%s", got, want)
	}
}

// TestSandboxNeverTheHost checks that no endpoint, pinned or not, is
// programmed through a path that leads to the host's own namespace or to
// something that is not a network namespace.
func TestSandboxNeverTheHost(t *testing.T) {
	tb := newTestbed(t, "ovnh", 1)
	before := render(t, tb.hosts[0].NS)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	hostID := identify(t, tb.hosts[0].Path())
	for name, ep := range map[string]datapath.LocalEndpoint{
		"host":        {Sandbox: tb.hosts[0].Path()},
		"pinned host": {Sandbox: tb.hosts[0].Path(), SandboxID: hostID},
		"file":        {Sandbox: file},
		"pinned file": {Sandbox: file, SandboxID: hostID},
	} {
		ep.ID, ep.IfName, ep.Addr, ep.DefaultRoute = "h", "eth7", pfx("172.17.0.9/16"), true
		n := bridgeNet("def", "mesh0", "172.17.0.1/16", ep)
		err := tb.dps[0].Apply([]datapath.Network{n})
		if !errors.Is(err, datapath.ErrSandboxGone) || !strings.Contains(err.Error(), ep.Sandbox) {
			t.Errorf("%s: Apply = %v, want ErrSandboxGone", name, err)
		}
		if got := render(t, tb.hosts[0].NS); strings.Contains(got, "ep=h") || strings.Contains(got, "eth7") {
			t.Errorf("%s: endpoint programmed:\n%s", name, got)
		}
		mustApply(t, tb.dps[0])
		if got := render(t, tb.hosts[0].NS); got != before {
			t.Errorf("%s: host after teardown:\n%s\nwant:\n%s", name, got, before)
		}
	}
}
