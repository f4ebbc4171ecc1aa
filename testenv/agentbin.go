package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
)

// AgentBins are the paths of the meshagent and agentctl binaries.
type AgentBins struct {
	Agent, Ctl string
}

var agentBins struct {
	sync.Mutex
	bins AgentBins // set once built by this process
}

// AgentBinaries builds cmd/meshagent and cmd/agentctl of this source tree
// into the cache, once per process, and returns their paths. The cache
// directory is keyed by the tree's path, so two checkouts never overwrite
// each other's binaries; go build's own cache makes a rebuild of
// unchanged sources quick. A failed build is retried on the next call.
func AgentBinaries(ctx context.Context) (AgentBins, error) {
	agentBins.Lock()
	defer agentBins.Unlock()
	if agentBins.bins.Agent != "" {
		return agentBins.bins, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return AgentBins{}, err
	}
	h := sha256.Sum256([]byte(RepoRoot()))
	dir := filepath.Join(cache, "bin-"+hex.EncodeToString(h[:])[:12])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return AgentBins{}, err
	}
	bins := AgentBins{Agent: filepath.Join(dir, "meshagent"), Ctl: filepath.Join(dir, "agentctl")}
	err = withLock(filepath.Join(dir, "build.lock"), func() error {
		if err := goBuild(ctx, RepoRoot(), "./cmd/meshagent", bins.Agent); err != nil {
			return err
		}
		return goBuild(ctx, RepoRoot(), "./cmd/agentctl", bins.Ctl)
	})
	if err != nil {
		return AgentBins{}, err
	}
	agentBins.bins = bins
	return bins, nil
}
