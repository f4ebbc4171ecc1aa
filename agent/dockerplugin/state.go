package dockerplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// maxStateBytes bounds the state file read at start.
const maxStateBytes = 64 << 20

// state is what the plugin remembers across restarts: which Docker
// network and endpoint is which meshnet one, and the addresses leased for
// Docker that no endpoint of Docker's holds yet. Guarded by Plugin.mu.
type state struct {
	path string
	// Networks: Docker network id → the meshnet network.
	Networks map[string]networkBinding `json:"networks"`
	// Endpoints: Docker endpoint id → the meshnet endpoint.
	Endpoints map[string]endpointBinding `json:"endpoints"`
	// Addresses: addressKey(meshnet network, IP) → the meshnet endpoint
	// that holds the lease (from RequestAddress to ReleaseAddress).
	Addresses map[string]addressLease `json:"addresses"`
}

type addressLease struct {
	Endpoint string    `json:"endpoint"` // meshnet endpoint id
	Since    time.Time `json:"since"`
}

type networkBinding struct {
	Network string `json:"network"` // meshnet network id
	Subnet  string `json:"subnet"`
}

type endpointBinding struct {
	Network  string    `json:"network"`  // meshnet network id
	Endpoint string    `json:"endpoint"` // meshnet endpoint id
	Since    time.Time `json:"since"`
}

func addressKey(networkID, ip string) string { return networkID + " " + ip }

// loadState reads the state file; a missing one is an empty state.
func loadState(path string) (*state, error) {
	st := &state{path: path, Networks: map[string]networkBinding{}, Endpoints: map[string]endpointBinding{}, Addresses: map[string]addressLease{}}
	if path == "" {
		return st, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the Docker plugin's state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the Docker plugin's state: %w", err)
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("the Docker plugin's state %s is larger than %d bytes", path, maxStateBytes)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("the Docker plugin's state %s is damaged (%v): move it away to start afresh", path, err)
	}
	for id := range st.Networks {
		if checkID("network", id) != nil {
			return nil, fmt.Errorf("the Docker plugin's state %s is damaged (network id %q): move it away to start afresh", path, id)
		}
	}
	for id := range st.Endpoints {
		if checkID("endpoint", id) != nil {
			return nil, fmt.Errorf("the Docker plugin's state %s is damaged (endpoint id %q): move it away to start afresh", path, id)
		}
	}
	if st.Networks == nil {
		st.Networks = map[string]networkBinding{}
	}
	if st.Endpoints == nil {
		st.Endpoints = map[string]endpointBinding{}
	}
	if st.Addresses == nil {
		st.Addresses = map[string]addressLease{}
	}
	return st, nil
}

// save writes the state file whole: a new file renamed over the old one.
func (st *state) save() error {
	if st.path == "" {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(st.path), ".docker-plugin-*")
	if err != nil {
		return fmt.Errorf("saving the Docker plugin's state: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), st.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving the Docker plugin's state: %w", err)
	}
	return nil
}

// dockerNetworkOf returns the Docker network bound to a meshnet network.
func (st *state) dockerNetworkOf(meshnetID string) (string, bool) {
	for id, b := range st.Networks {
		if b.Network == meshnetID {
			return id, true
		}
	}
	return "", false
}
