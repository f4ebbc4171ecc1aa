// Package statefile keeps, in the data dir, what the agent needs to come
// back after a restart without the store or gossip: its sandboxes and endpoints, its local
// networks, a copy of the global networks it mirrors from the store, the
// remote endpoints it last programmed, and the gossip peers it last saw.
//
// state.json is a snapshot of all of it. An operation on a few sandboxes
// and endpoints (the ones that come by the thousand) appends just those
// records to state.journal instead, synced, so that its cost does not
// grow with the host; loading replays the journal's entries newer than
// the snapshot (by sequence number) over it. Every full save rewrites the
// snapshot and empties the journal, and so does a journal grown as long
// as the snapshot holds records: the journal costs O(1) per operation,
// amortized.
package statefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/gossip"
)

// State is what the data dir keeps.
type State struct {
	Seq       uint64                       `json:"seq,omitempty"` // the last journal entry included
	Networks  []*driver.Network            `json:"networks"`
	Sandboxes []*sandboxes.Sandbox         `json:"sandboxes"`
	Endpoints []*sandboxes.Endpoint        `json:"endpoints"`
	Remote    map[string][]gossip.Endpoint `json:"remote"`
	Peers     []string                     `json:"peers"`
}

type file struct {
	path    string
	mu      sync.Mutex // held from snapshot to rename, so a newer snapshot is never overwritten by an older one
	seq     uint64     // the last sequence number written; guarded by mu
	entries int        // in the journal since the snapshot; guarded by mu
	journal *os.File   // open for appending, nil until the first entry; guarded by mu
}

// journalEntry is one operation's records: those present are written
// over the snapshot's, the ids gone are deleted from it.
type journalEntry struct {
	Seq           uint64                `json:"seq"`
	Sandboxes     []*sandboxes.Sandbox  `json:"sandboxes,omitempty"`
	Endpoints     []*sandboxes.Endpoint `json:"endpoints,omitempty"`
	GoneSandboxes []string              `json:"gone_sandboxes,omitempty"`
	GoneEndpoints []string              `json:"gone_endpoints,omitempty"`
}

func (f *file) journalPath() string { return strings.TrimSuffix(f.path, ".json") + ".journal" }

func (f *file) load() (State, error) {
	var st State
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return st, f.replay(&st)
	}
	if err != nil {
		return st, fmt.Errorf("reading agent state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("agent state %s is corrupt: %v", f.path, err)
	}
	f.seq = st.Seq
	if err := f.replay(&st); err != nil {
		return st, err
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

// replay applies the journal's entries newer than st's snapshot to st. A
// last line cut short (a crash while appending it) is ignored: its
// operation had not returned.
func (f *file) replay(st *State) error {
	b, err := os.ReadFile(f.journalPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading agent state journal: %w", err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		// The last line is cut short: the next save must not append
		// after it, but write a snapshot (which empties the journal).
		defer func() { f.entries = math.MaxInt }()
	}
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		var e journalEntry
		if err := json.Unmarshal(line, &e); err != nil {
			if i == len(lines)-1 {
				break
			}
			return fmt.Errorf("agent state journal %s is corrupt at line %d: %v", f.journalPath(), i+1, err)
		}
		if e.Seq <= st.Seq {
			continue
		}
		st.Seq, f.seq = e.Seq, e.Seq
		f.entries++
		st.Sandboxes = upsert(st.Sandboxes, e.Sandboxes, e.GoneSandboxes, func(r *sandboxes.Sandbox) string { return r.ID })
		st.Endpoints = upsert(st.Endpoints, e.Endpoints, e.GoneEndpoints, func(r *sandboxes.Endpoint) string { return r.ID })
	}
	return nil
}

// upsert writes recs over list (by id) and deletes the ids gone.
func upsert[T any](list, recs []T, gone []string, id func(T) string) []T {
	drop := map[string]bool{}
	for _, g := range gone {
		drop[g] = true
	}
	for _, r := range recs {
		drop[id(r)] = true
	}
	list = slices.DeleteFunc(list, func(r T) bool { return drop[id(r)] })
	return append(list, recs...)
}

// appendRaw adds an entry (JSON, one line) to the journal and syncs it.
// The caller holds f.mu.
func (f *file) appendRaw(b []byte) error {
	var err error
	if f.journal == nil {
		if f.journal, err = os.OpenFile(f.journalPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return fmt.Errorf("saving agent state: %w", err)
		}
	}
	if _, err := f.journal.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("saving agent state: %w", err)
	}
	if err := f.journal.Sync(); err != nil {
		return fmt.Errorf("saving agent state: %w", err)
	}
	f.entries++
	return nil
}

// truncateJournal empties the journal after a snapshot that includes it.
// The caller holds f.mu.
func (f *file) truncateJournal() error {
	if f.journal != nil {
		f.journal.Close()
		f.journal = nil
	}
	f.entries = 0
	if err := os.Remove(f.journalPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("saving agent state: %w", err)
	}
	return nil
}

// close releases the journal's descriptor.
func (f *file) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.journal != nil {
		f.journal.Close()
		f.journal = nil
	}
}

// write replaces the state file atomically: a crash leaves the old or the
// new one. The caller holds f.mu.
func (f *file) write(b []byte) error {
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

// journalMin is the fewest entries the journal may reach before a
// snapshot replaces it.
const journalMin = 64
