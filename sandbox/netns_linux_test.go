package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ipCmd runs iproute2's ip (make test installs it when missing).
func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal("ip (iproute2) is not installed: run make deps")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hostNS is the test process's network namespace, taken while package
// variables are initialised: on the main thread, before any test could move
// a thread elsewhere.
var hostNS = func() netns.NsHandle {
	h, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		panic(err)
	}
	return h
}()

func inode(t testing.TB, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestCreate(t *testing.T) {
	needRoot(t)
	name := testName(t)
	path, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(RunDir, name.String()) {
		t.Errorf("Create returned %q, want %q", path, filepath.Join(RunDir, name.String()))
	}
	if _, err := Identify(path); err != nil {
		t.Errorf("Identify: %v", err)
	}
	if !Exists(name) {
		t.Error("Exists = false after Create")
	}
	if !isMountPoint(t, path) {
		t.Errorf("%s is not a mount point", path)
	}

	// A namespace of its own, holding nothing but lo, up.
	h, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Equal(hostNS) {
		t.Fatal("the sandbox namespace is the test's own namespace")
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	links, err := nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" || links[0].Attrs().OperState != netlink.OperUnknown && links[0].Attrs().OperState != netlink.OperUp {
		t.Errorf("links: %v, want lo alone", links)
	}

	ifaces, err := Interfaces(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" || !ifaces[0].Up ||
		!slices.Contains(ifaces[0].Addrs, netip.MustParsePrefix("127.0.0.1/8")) {
		t.Errorf("Interfaces = %+v, want lo alone, up, with 127.0.0.1/8", ifaces)
	}

	// iproute2 sees it as one of its own.
	if out := ipCmd(t, "netns", "list"); !slices.Contains(strings.Fields(out), name.String()) {
		t.Errorf("ip netns list does not show %s:\n%s", name, out)
	}
	out := ipCmd(t, "-n", name.String(), "-o", "link", "show")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 ||
		!strings.Contains(lines[0], ": lo: <LOOPBACK,UP,") {
		t.Errorf("ip -n %s link show:\n%s\nwant lo alone, up", name, out)
	}
}

func TestCreateExisting(t *testing.T) {
	needRoot(t)
	name := testName(t)
	path, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	ino := inode(t, path)

	_, err = Create(name)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if want := "sandbox namespace " + name.String() + " already exists"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// The first one is untouched.
	if _, err := Identify(path); err != nil {
		t.Fatal(err)
	}
	if inode(t, path) != ino {
		t.Error("the namespace at the path changed")
	}
	if ifaces, err := Interfaces(path); err != nil || len(ifaces) != 1 || !ifaces[0].Up {
		t.Errorf("Interfaces after the failed Create: %+v, %v", ifaces, err)
	}

	// A plain file in the way (say, left by a crash) is not replaced.
	other := testName(t)
	if err := os.WriteFile(Path(other), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(other); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over a plain file: %v, want ErrExists", err)
	}
	if fi, err := os.Lstat(Path(other)); err != nil || !fi.Mode().IsRegular() || isMountPoint(t, Path(other)) {
		t.Errorf("the plain file was changed: %v, %v", fi, err)
	}
	if Exists(other) {
		t.Error("Exists = true for a plain file")
	}
}

// TestCreateRace has many goroutines create one name: exactly one wins, and
// the losers leave the winner's namespace alone.
func TestCreateRace(t *testing.T) {
	needRoot(t)
	name := testName(t)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = Create(name) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrExists):
			t.Errorf("Create: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d Creates succeeded, want 1", won)
	}
	if _, err := Identify(Path(name)); err != nil {
		t.Error(err)
	}
}

func TestRemove(t *testing.T) {
	needRoot(t)
	name := testName(t)
	if _, err := Create(name); err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(name, Files{Hostname: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := Remove(name); err != nil {
		t.Fatal(err)
	}
	assertGone(t, name)
	if Exists(name) {
		t.Error("Exists = true after Remove")
	}
	if err := Remove(name); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := Remove(testName(t)); err != nil {
		t.Errorf("Remove of a name never created: %v", err)
	}
	// Created again under the same name, it is a fresh namespace.
	if _, err := Create(name); err != nil {
		t.Fatalf("Create after Remove: %v", err)
	}

	// Leftovers of a crash: a plain file, or files without a namespace.
	stale := testName(t)
	if err := os.WriteFile(Path(stale), nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(stale, Files{}); err != nil {
		t.Fatal(err)
	}
	if err := Remove(stale); err != nil {
		t.Fatal(err)
	}
	assertGone(t, stale)
}

// TestRemoveKeepsOpenNamespace checks that a namespace still referred to
// lives on after Remove, as after `ip netns delete`.
func TestRemoveKeepsOpenNamespace(t *testing.T) {
	needRoot(t)
	name := testName(t)
	path, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := Remove(name); err != nil {
		t.Fatal(err)
	}
	assertGone(t, name)
	held := fmt.Sprintf("/proc/self/fd/%d", int(h))
	if _, err := Identify(held); err != nil {
		t.Fatal(err)
	}
	if ifaces, err := Interfaces(held); err != nil || len(ifaces) != 1 {
		t.Errorf("Interfaces of the held namespace: %+v, %v", ifaces, err)
	}
}

func TestIdentify(t *testing.T) {
	needRoot(t)
	name := testName(t)
	path, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo") // opening it would block
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error  // nil: a network namespace
		msg  string // part of the error
	}{
		{path, nil, ""},
		{"/proc/self/ns/net", nil, ""},
		{fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), nil, ""},
		{"/proc/self/ns/mnt", ErrNotNetNS, "is not a network namespace (it is a mount namespace)"},
		{"/proc/self/ns/uts", ErrNotNetNS, "UTS namespace"},
		{regular, ErrNotNetNS, regular + " is not a network namespace"},
		{dir, ErrNotNetNS, ""},
		{fifo, ErrNotNetNS, ""},
		{"/dev/null", ErrNotNetNS, ""},
		{filepath.Join(dir, "missing"), fs.ErrNotExist, "no such file or directory"},
	} {
		id, err := Identify(tc.path)
		if tc.want == nil {
			if err != nil || id.IsZero() {
				t.Errorf("Identify(%s) = %v, %v, want an identity", tc.path, id, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.msg) || !strings.Contains(fmt.Sprint(err), tc.path) || !id.IsZero() {
			t.Errorf("Identify(%s) = %v, %v, want %v naming the path and containing %q", tc.path, id, err, tc.want, tc.msg)
		}
	}

	// Two paths to one namespace have one identity; two namespaces two.
	otherName := testName(t)
	other, err := Create(otherName)
	if err != nil {
		t.Fatal(err)
	}
	idA, _ := Identify(path)
	idB, _ := Identify(other)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	viaFD, err := Identify(fmt.Sprintf("/proc/self/fd/%d", fd))
	switch {
	case idA == idB:
		t.Errorf("two namespaces share the identity %s", idA)
	case err != nil || viaFD != idA:
		t.Errorf("the namespace through a descriptor is %s (%v), through its name %s", viaFD, err, idA)
	case !strings.HasPrefix(idA.String(), fmt.Sprintf("net:[%d] dev ", idA.Ino)):
		t.Errorf("String() = %q", idA.String())
	}
}

// TestInvalidName: the zero Name (all that is not a valid name can be) is
// refused everywhere.
func TestInvalidName(t *testing.T) {
	for _, s := range []string{"", "..", "../etc", "a/b", "-x"} {
		if n, err := ParseName(s); err == nil || !n.IsZero() {
			t.Errorf("ParseName(%q) = %q, %v", s, n, err)
		}
	}
	for _, name := range []Name{{}} {
		if _, err := Create(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Create(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := Remove(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Remove(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := WriteFiles(name, Files{}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("WriteFiles(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := RemoveFiles(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("RemoveFiles(%q) = %v, want ErrInvalidName", name, err)
		}
		if Exists(name) {
			t.Errorf("Exists(%q) = true", name)
		}
	}
}

// TestConcurrent creates and removes many sandboxes in parallel, then checks
// that nothing is left and no thread of the process was left in another
// network namespace.
func TestConcurrent(t *testing.T) {
	needRoot(t)
	const n = 50
	names := make([]Name, n)
	for i := range names {
		names[i] = testName(t)
	}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			// The caller's own thread never moves.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			path, err := Create(name)
			if err != nil {
				t.Error(err)
				return
			}
			if ifaces, err := Interfaces(path); err != nil || len(ifaces) != 1 || !ifaces[0].Up {
				t.Errorf("Interfaces(%s) = %+v, %v", path, ifaces, err)
			}
			if err := Remove(name); err != nil {
				t.Error(err)
			}
			if now, err := netns.Get(); err != nil || !now.Equal(hostNS) {
				t.Errorf("calling thread moved to namespace %v (%v)", now, err)
			} else {
				now.Close()
			}
		})
	}
	wg.Wait()
	for _, name := range names {
		assertGone(t, name)
	}
	checkThreads(t, hostNS)
}

// checkThreads checks that the process's idle threads are in the namespace
// orig: it holds many goroutines locked to their threads at once, so that
// each runs on a different one, and looks at each thread's namespace.
func checkThreads(t *testing.T, orig netns.NsHandle) {
	n := 4*runtime.GOMAXPROCS(0) + 64
	var (
		checked sync.WaitGroup
		all     sync.WaitGroup
		release = make(chan struct{})
	)
	checked.Add(n)
	for range n {
		all.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if now, err := netns.Get(); err != nil || !now.Equal(orig) {
				t.Errorf("thread %d is in namespace %v (%v)", unix.Gettid(), now, err)
			} else {
				now.Close()
			}
			checked.Done()
			<-release
		})
	}
	done := make(chan struct{})
	go func() { checked.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Error("threads not checked within a minute")
	}
	close(release)
	all.Wait()
}

// TestCreateFailureLeavesNothing makes Create fail after the namespace was
// mounted, and checks that it takes everything back.
func TestCreateFailureLeavesNothing(t *testing.T) {
	needRoot(t)
	defer func(orig func(string) error) { bindNetNS = orig }(bindNetNS)
	bindNetNS = func(path string) error {
		if err := bindNewNetNS(path); err != nil {
			return err
		}
		return errors.New("injected failure")
	}
	name := testName(t)
	if _, err := Create(name); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Create = %v, want the injected failure", err)
	}
	assertGone(t, name)
	checkThreads(t, hostNS)
}

// TestAttach: a name attached to an existing namespace enters that very
// namespace, and removing the name leaves the namespace to the others.
func TestAttach(t *testing.T) {
	needRoot(t)
	owner, shared := testName(t), testName(t)
	path, err := Create(owner)
	if err != nil {
		t.Fatal(err)
	}
	apath, err := Attach(shared, path)
	if err != nil {
		t.Fatal(err)
	}
	inode := func(p string) uint64 {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	if inode(apath) != inode(path) {
		t.Fatalf("%s leads to another namespace than %s", apath, path)
	}
	if _, err := Attach(shared, path); !errors.Is(err, ErrExists) {
		t.Errorf("attaching a taken name: %v", err)
	}
	if err := Remove(shared); err != nil {
		t.Fatal(err)
	}
	if _, err := Identify(path); err != nil {
		t.Errorf("the namespace went with the attached name: %v", err)
	}
	bad := testName(t)
	if _, err := Attach(bad, "/proc/self/ns/mnt"); err == nil {
		t.Error("attached a mount namespace")
	}
	if _, err := os.Stat(Path(bad)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed Attach left %s: %v", Path(bad), err)
	}
}
