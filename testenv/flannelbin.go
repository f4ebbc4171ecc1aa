package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// The flannel release meshnet's join time is measured against (e2e
// BenchmarkJoinVsFlannel), pinned.
const (
	FlannelModule = "github.com/flannel-io/flannel"
	FlannelVer    = "v0.26.7"
)

// FlannelBinary returns the path of flanneld FlannelVer, installing it
// into the cache on first use (`go install` of its module; a cold build
// takes a few minutes). MESHNET_FLANNELD_BIN names a flanneld to use
// instead.
func FlannelBinary(ctx context.Context) (string, error) {
	if p := os.Getenv("MESHNET_FLANNELD_BIN"); p != "" {
		return p, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "flannel-"+FlannelVer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "flanneld")
	err = withLock(filepath.Join(dir, "install.lock"), func() error {
		if _, err := os.Stat(out); err == nil {
			return nil
		}
		// go install names the binary after the module: "flannel".
		gobin := filepath.Join(dir, "gobin")
		pkg := FlannelModule + "@" + FlannelVer
		cmd := exec.CommandContext(ctx, "go", "install",
			"-ldflags", "-X "+FlannelModule+"/pkg/version.Version="+FlannelVer, pkg)
		// flannel's own Makefile enables cgo on amd64 only, where its UDP
		// backend (linked in unconditionally) needs it.
		cgo := "0"
		if runtime.GOARCH == "amd64" {
			cgo = "1"
		}
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED="+cgo, "GOBIN="+gobin,
			"GOFLAGS=-buildvcs=false")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go install %s: %w\n%s", pkg, err, b)
		}
		if err := os.Rename(filepath.Join(gobin, "flannel"), out); err != nil {
			return fmt.Errorf("installing flanneld: %w", err)
		}
		return os.Remove(gobin)
	})
	if err != nil {
		return "", err
	}
	return out, nil
}
