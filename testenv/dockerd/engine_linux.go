package dockerd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/meshnet/meshnet/testenv"
)

// The modern engine, pinned: moby's Go module v2 (the Docker 29 line,
// API 1.54) and a runc recent enough for it. Debian's runc 1.1 lacks the
// time namespace Docker 29 asks runc for. ModernVersion is the release of
// that moby tag (its releases/versions.yaml), stamped into the binary so
// that `docker version` shows it; bump the three together.
const (
	MobyModule    = "github.com/moby/moby/v2"
	MobyVersion   = "v2.0.0-beta.15"
	ModernVersion = "29.5.1"
	RuncModule    = "github.com/opencontainers/runc"
	RuncVersion   = "v1.3.0"
)

// mobyTags leave out the storage drivers that need headers Debian's
// docker.io build does not bring (btrfs, devicemapper); the tests use vfs.
const mobyTags = "exclude_graphdriver_btrfs exclude_graphdriver_devicemapper"

// sysPath is the PATH of Debian's engine helpers: containerd,
// containerd-shim-runc-v2 and runc in /usr/bin, docker-proxy in
// /usr/sbin, docker-init in /usr/bin.
const sysPath = "/usr/sbin:/usr/bin:/sbin:/bin"

// Engine is one Docker engine: the binaries a Daemon runs and the flags
// every daemon of that engine gets.
type Engine struct {
	// Name is "docker-20.10" (Legacy) or "docker-29.5.1" (Modern).
	Name string
	// Dockerd is the daemon binary.
	Dockerd string
	// Docker is the CLI that Daemon.Docker runs: Debian's 20.10 CLI for
	// both engines (it negotiates API 1.41, which Docker 29 still serves:
	// its minimum is 1.40).
	Docker string
	// Args are flags every daemon of the engine gets, before
	// Options.Args.
	Args []string
	// Env is added to the daemon's environment: PATH, where dockerd finds
	// containerd, its shim, runc, docker-proxy and docker-init.
	Env []string
}

// Legacy is Debian's engine, Docker 20.10 (docker.io): dockerd,
// containerd 1.6 (started by dockerd), runc 1.1, docker-proxy. It is the
// last line with the classic overlay's external cluster store
// (--cluster-store), and it installs what is missing (Install).
func Legacy(ctx context.Context) (Engine, error) {
	if err := Install(ctx); err != nil {
		return Engine{}, err
	}
	return Engine{Name: "docker-20.10", Dockerd: "/usr/sbin/dockerd", Docker: "/usr/bin/docker",
		Env: []string{"PATH=" + sysPath}}, nil
}

var modern struct {
	sync.Mutex
	dir string
}

// Modern is a current engine: dockerd and docker-proxy of MobyModule at
// MobyVersion and runc RuncVersion, built with `go install` into the
// test cache (testenv.CacheDir) on first use (about four and a half
// minutes cold on 2 cores; a second or two once cached), beside Debian's
// containerd 1.6 and docker CLI. MESHNET_DOCKER_MODERN_DIR names a
// directory holding dockerd, docker-proxy and runc to use instead.
//
// Its daemons run runc RuncVersion as their default runtime, "runc13":
// --add-runtime runc13=PATH --default-runtime runc13. The built
// docker-proxy comes first in PATH: Docker 29 hands the proxy its
// listening socket (-use-listen-fd), which Debian's 20.10 proxy does not
// know.
func Modern(ctx context.Context) (Engine, error) {
	if err := Install(ctx); err != nil {
		return Engine{}, err
	}
	dir, err := modernDir(ctx)
	if err != nil {
		return Engine{}, err
	}
	return Engine{Name: "docker-" + ModernVersion, Dockerd: filepath.Join(dir, "dockerd"), Docker: "/usr/bin/docker",
		Args: []string{"--add-runtime", "runc13=" + filepath.Join(dir, "runc"), "--default-runtime", "runc13"},
		Env:  []string{"PATH=" + dir + ":" + sysPath}}, nil
}

// ModernBuildTime is how long the last call of Modern in this process
// spent building (zero when everything was cached).
var ModernBuildTime time.Duration

func modernDir(ctx context.Context) (string, error) {
	modern.Lock()
	defer modern.Unlock()
	if modern.dir != "" {
		return modern.dir, nil
	}
	if dir := os.Getenv("MESHNET_DOCKER_MODERN_DIR"); dir != "" {
		modern.dir = dir
		return dir, nil
	}
	cache, err := testenv.CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "docker-"+ModernVersion+"-moby-"+MobyVersion+"-runc-"+RuncVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	start := time.Now()
	err = withLock(filepath.Join(dir, "install.lock"), func() error {
		ldflags := "-X " + MobyModule + "/dockerversion.Version=" + ModernVersion +
			" -X " + MobyModule + "/dockerversion.GitCommit=" + MobyVersion
		builds := []struct {
			out  string
			args []string
		}{
			{"dockerd", []string{"-tags", mobyTags, "-ldflags", ldflags, MobyModule + "/cmd/dockerd@" + MobyVersion}},
			{"docker-proxy", []string{"-tags", mobyTags, MobyModule + "/cmd/docker-proxy@" + MobyVersion}},
			{"runc", []string{"-tags", "seccomp", RuncModule + "@" + RuncVersion}},
		}
		for _, b := range builds {
			if _, err := os.Stat(filepath.Join(dir, b.out)); err == nil {
				continue
			}
			if err := goInstall(ctx, dir, b.out, b.args); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	ModernBuildTime = time.Since(start)
	modern.dir = dir
	return dir, nil
}

// goInstall runs `go install ARGS` with GOBIN a fresh directory and moves
// the binary named out from it to dir/out, so that a build interrupted
// half-way leaves nothing that looks installed.
func goInstall(ctx context.Context, dir, out string, args []string) error {
	gobin, err := os.MkdirTemp(dir, "gobin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(gobin)
	cmd := exec.CommandContext(ctx, "go", append([]string{"install"}, args...)...)
	cmd.Dir = gobin // outside any module: go install PKG@VERSION
	// cgo: dockerd links libnftables (its nftables firewall backend),
	// runc libseccomp.
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=1", "GOBIN="+gobin,
		"GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go install %s: %w\n%s", strings.Join(args, " "), err, tail(b, 30))
	}
	if err := os.Rename(filepath.Join(gobin, out), filepath.Join(dir, out)); err != nil {
		return fmt.Errorf("installing %s: %w", out, err)
	}
	return nil
}
