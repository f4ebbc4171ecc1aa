package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// The reference CNI tools the tests drive meshnet's plugin with and
// measure it against, pinned: cnitool of the CNI library the plugin uses,
// and the reference plugins (bridge, host-local, portmap) of a release
// built on it (CNI 1.1).
const (
	CNIToolModule    = "github.com/containernetworking/cni/cnitool@v1.3.0"
	CNIPluginsModule = "github.com/containernetworking/plugins"
	CNIPluginsVer    = "v1.7.1"
)

// CNIBins are the paths the CNI tests use.
type CNIBins struct {
	// Path is a CNI_PATH: the directory of meshnet's plugin (built from
	// this tree, named "meshnet") and the reference plugins' directory.
	Path string
	// Plugin is meshnet's plugin binary.
	Plugin string
	// Tool is the reference cnitool.
	Tool string
	// RefDir holds the reference plugins (bridge, host-local, portmap,
	// loopback).
	RefDir string
}

var cniBins struct {
	sync.Mutex
	bins CNIBins
}

// CNIBinaries builds meshnet's CNI plugin of this tree (like
// AgentBinaries, once per process) and installs the pinned reference
// tools into the cache (once per cache: `go install` of their modules).
func CNIBinaries(ctx context.Context) (CNIBins, error) {
	cniBins.Lock()
	defer cniBins.Unlock()
	if cniBins.bins.Plugin != "" {
		return cniBins.bins, nil
	}
	agent, err := AgentBinaries(ctx)
	if err != nil {
		return CNIBins{}, err
	}
	pluginDir := filepath.Join(filepath.Dir(agent.Agent), "cni")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return CNIBins{}, err
	}
	plugin := filepath.Join(pluginDir, "meshnet")
	if err := withLock(filepath.Join(pluginDir, "build.lock"), func() error {
		return goBuild(ctx, RepoRoot(), "./cmd/meshnet-cni", plugin)
	}); err != nil {
		return CNIBins{}, err
	}
	cache, err := CacheDir()
	if err != nil {
		return CNIBins{}, err
	}
	refDir := filepath.Join(cache, "cni-"+CNIPluginsVer)
	if err := os.MkdirAll(refDir, 0o755); err != nil {
		return CNIBins{}, err
	}
	pkgs := []string{CNIToolModule}
	for _, p := range []string{"main/bridge", "ipam/host-local", "meta/portmap", "main/loopback"} {
		pkgs = append(pkgs, CNIPluginsModule+"/plugins/"+p+"@"+CNIPluginsVer)
	}
	err = withLock(filepath.Join(refDir, "install.lock"), func() error {
		for _, pkg := range pkgs {
			name := filepath.Base(trimVersion(pkg))
			if _, err := os.Stat(filepath.Join(refDir, name)); err == nil {
				continue
			}
			cmd := exec.CommandContext(ctx, "go", "install", pkg)
			cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOBIN="+refDir, "GOFLAGS=-buildvcs=false")
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go install %s: %w\n%s", pkg, err, b)
			}
		}
		return nil
	})
	if err != nil {
		return CNIBins{}, err
	}
	cniBins.bins = CNIBins{Path: pluginDir + string(filepath.ListSeparator) + refDir, Plugin: plugin,
		Tool: filepath.Join(refDir, "cnitool"), RefDir: refDir}
	return cniBins.bins, nil
}

// trimVersion drops "@VERSION" from a package path.
func trimVersion(pkg string) string {
	path, _, _ := strings.Cut(pkg, "@")
	return path
}
