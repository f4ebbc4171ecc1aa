// Package testenv builds the real parts meshnet's tests, demo and
// benchmarks run against: cluster-store servers (an embedded etcd, an etcd
// server process, a Consul server built from its Go module) on loopback or
// inside a network namespace (ServerOptions), the meshagent and agentctl
// binaries (AgentBinaries), hosts made of network namespaces
// (testenv/nshost), and whole clusters of agents on them
// (testenv/cluster).
package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
)

// RepoRoot is the meshnet source tree this package was built from.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// CacheDir is where built test binaries are kept between runs, outside
// the repository: $XDG_CACHE_HOME/meshnet or ~/.cache/meshnet.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "meshnet")
	return dir, os.MkdirAll(dir, 0o755)
}

// withLock runs fn holding an exclusive lock on path, so that test
// packages running in parallel build a binary once.
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

// goBuild builds the main package in dir (a directory of a module) to out.
func goBuild(ctx context.Context, dir, pkg, out string) error {
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return os.Rename(tmp, out)
}

// ConsulBinary returns the path of the Consul server built from
// testenv/consulbin (its own module, pinned Consul version), building it on
// first use. The cache key is a hash of that module's files, so a version
// bump rebuilds. A cold build takes a few minutes.
func ConsulBinary(ctx context.Context) (string, error) {
	if p := os.Getenv("MESHNET_CONSUL_BIN"); p != "" {
		return p, nil
	}
	src := filepath.Join(RepoRoot(), "testenv", "consulbin")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", fmt.Errorf("reading consul builder: %w", err)
		}
		h.Write(b)
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "consul-"+hex.EncodeToString(h.Sum(nil))[:12])
	err = withLock(filepath.Join(cache, "consul.lock"), func() error {
		if _, err := os.Stat(out); err == nil {
			return nil
		}
		return goBuild(ctx, src, ".", out)
	})
	return out, err
}

// EtcdServerBinary builds testenv/etcdserver (a standalone etcd server
// process around kvstore/embedded) into the cache and returns its path.
func EtcdServerBinary(ctx context.Context) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "etcdserver")
	err = withLock(out+".lock", func() error {
		return goBuild(ctx, RepoRoot(), "./testenv/etcdserver", out)
	})
	return out, err
}
