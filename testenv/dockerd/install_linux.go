package dockerd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/meshnet/meshnet/testenv"
)

// DebianPackages are the Debian packages this package uses:
//   - docker.io: dockerd 20.10, containerd 1.6, runc 1.1, docker-proxy,
//     docker-init and the docker CLI (20.10), the legacy engine;
//   - docker-compose: Compose 1.29, for tests that drive the engines
//     with a compose file;
//   - busybox-static: the one binary of the test image (ImportBusybox);
//   - etcd-server: etcd 3.4, whose v2 API is the cluster store of
//     Docker's classic overlay (the project's etcd 3.6 has no v2 API);
//   - libnftables-dev, libseccomp-dev: headers the modern engine (cgo,
//     nftables firewall backend) and runc (seccomp) are built with.
var DebianPackages = []string{"docker.io", "docker-compose", "busybox-static", "etcd-server",
	"libnftables-dev", "libseccomp-dev"}

var installed struct {
	sync.Mutex
	done bool
}

// Install apt-installs whichever of DebianPackages are missing; when all
// are installed it only asks dpkg (a few milliseconds). It needs root.
// apt-get does not start the services of docker.io or etcd-server where
// policy-rc.d forbids it or systemd is not running, as on the test
// machines; nothing here uses them.
func Install(ctx context.Context) error {
	installed.Lock()
	defer installed.Unlock()
	if installed.done {
		return nil
	}
	if err := EnsureDebian(ctx, DebianPackages...); err != nil {
		return err
	}
	installed.done = true
	return nil
}

// EnsureDebian apt-installs those of pkgs that dpkg does not report
// installed, holding a lock so that test binaries running side by side
// do not race for dpkg's.
func EnsureDebian(ctx context.Context, pkgs ...string) error {
	if missing := missingDebian(ctx, pkgs); len(missing) == 0 {
		return nil
	}
	cache, err := testenv.CacheDir()
	if err != nil {
		return err
	}
	return withLock(filepath.Join(cache, "apt.lock"), func() error {
		missing := missingDebian(ctx, pkgs)
		if len(missing) == 0 {
			return nil
		}
		env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		update := exec.CommandContext(ctx, "apt-get", "update", "-q")
		update.Env = env
		if b, err := update.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get update: %w\n%s", err, tail(b, 20))
		}
		install := exec.CommandContext(ctx, "apt-get", append([]string{"install", "-y", "-q"}, missing...)...)
		install.Env = env
		if b, err := install.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install %s: %w\n%s", strings.Join(missing, " "), err, tail(b, 20))
		}
		if still := missingDebian(ctx, pkgs); len(still) > 0 {
			return fmt.Errorf("apt-get install left %s uninstalled", strings.Join(still, " "))
		}
		return nil
	})
}

// missingDebian returns those of pkgs dpkg does not have installed.
func missingDebian(ctx context.Context, pkgs []string) []string {
	// dpkg-query exits 1 if it knows none of some names; its output still
	// lists those it knows.
	out, _ := exec.CommandContext(ctx, "dpkg-query", append([]string{"-W",
		"-f=${Package} ${db:Status-Status}\n"}, pkgs...)...).Output()
	ok := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if name, status, found := strings.Cut(line, " "); found && status == "installed" {
			name, _, _ = strings.Cut(name, ":") // name:arch
			ok[name] = true
		}
	}
	var missing []string
	for _, p := range pkgs {
		if !ok[p] {
			missing = append(missing, p)
		}
	}
	return missing
}

// withLock runs fn holding an exclusive flock on path.
func withLock(path string, fn func() error) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
