package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshnet/meshnet/testenv/nshost"
)

var (
	prefix = nshost.Prefix("sbx") // this test run's names: "mnt-sbx-XXXXXX-N"
	serial atomic.Int64
)

// needRoot fails tests that change the host's /run/netns and /etc/netns
// when not run as root (make test runs them as root).
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: run the tests as root (make test)")
	}
}

// testName returns a sandbox name unique to this test run and removes the
// sandbox when the test ends, however it ends.
func testName(t testing.TB) Name {
	t.Helper()
	name := mustName(t, fmt.Sprintf("%s-%d", prefix, serial.Add(1)))
	t.Cleanup(func() {
		if err := Remove(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// isMountPoint reports whether path is a mount point in this process's
// mount namespace, from /proc/self/mountinfo.
func isMountPoint(t testing.TB, path string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT …; our paths need no unescaping.
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && fields[4] == path {
			return true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return false
}

// assertGone fails unless nothing of the sandbox name is left: no file in
// RunDir, no mount, no directory in EtcDir.
func assertGone(t testing.TB, name Name) {
	t.Helper()
	if _, err := os.Lstat(Path(name)); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", Path(name), err)
	}
	if isMountPoint(t, Path(name)) {
		t.Errorf("%s is still mounted", Path(name))
	}
	if _, err := os.Lstat(etcPath(name)); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", etcPath(name), err)
	}
}

// mustName parses a name the test knows to be valid.
func mustName(t testing.TB, s string) Name {
	t.Helper()
	n, err := ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
