package agent

// The data dir keeps what the agent needs to come back after a restart
// without the store or gossip: its sandboxes and endpoints, its local
// networks, a copy of the global networks it mirrors from the store, the
// remote endpoints it last programmed, and the gossip peers it last saw.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/gossip"
)

type persisted struct {
	Networks  []*driver.Network            `json:"networks"`
	Sandboxes []*sandboxRecord             `json:"sandboxes"`
	Endpoints []*endpointRecord            `json:"endpoints"`
	Remote    map[string][]gossip.Endpoint `json:"remote"`
	Peers     []string                     `json:"peers"`
}

type stateFile struct {
	path string
	mu   sync.Mutex // held from snapshot to rename, so a newer snapshot is never overwritten by an older one
}

func (f *stateFile) load() (persisted, error) {
	var st persisted
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("reading agent state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("agent state %s is corrupt: %v", f.path, err)
	}
	// Before endpoints were records of their own, sandboxes held them.
	for _, s := range st.Sandboxes {
		for _, e := range s.Legacy {
			e.SandboxID = s.ID
			st.Endpoints = append(st.Endpoints, e)
			s.Endpoints = append(s.Endpoints, e.ID)
		}
		s.Legacy = nil
	}
	return st, nil
}

// write replaces the state file atomically: a crash leaves the old or the
// new one. The caller holds f.mu.
func (f *stateFile) write(b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".state-*")
	if err != nil {
		return fmt.Errorf("saving agent state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("saving agent state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving agent state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving agent state: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("saving agent state: %w", err)
	}
	return nil
}

// saveState writes a snapshot of the agent's records to the data dir.
func (a *Agent) saveState() error {
	a.state.mu.Lock()
	defer a.state.mu.Unlock()
	a.mu.Lock()
	st := persisted{Remote: map[string][]gossip.Endpoint{}, Peers: a.peers}
	for _, n := range a.networks {
		st.Networks = append(st.Networks, n)
	}
	for _, s := range a.sandboxes {
		st.Sandboxes = append(st.Sandboxes, s)
	}
	for _, e := range a.endpoints {
		st.Endpoints = append(st.Endpoints, e)
	}
	for id, eps := range a.remote {
		st.Remote[id] = eps
	}
	b, err := json.Marshal(st) // under mu, since mu guards the records
	a.mu.Unlock()
	if err != nil {
		return err
	}
	a.saves.Add(1)
	if err := a.state.write(b); err != nil {
		a.log.Error("saving state", "err", err)
		return err
	}
	return nil
}
