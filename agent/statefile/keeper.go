package statefile

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/gossip"
)

// Sources are where the state comes from when it is saved.
type Sources struct {
	Networks func() []*driver.Network
	Records  *sandboxes.Table
	// Cache returns the remote endpoints last programmed and the gossip
	// peers last seen.
	Cache func() (map[string][]gossip.Endpoint, []string)
}

// Keeper saves the agent's state in its data dir. Its methods are safe
// for concurrent use; a snapshot is never overwritten by an older one.
type Keeper struct {
	f     *file
	src   Sources
	log   *slog.Logger
	saves atomic.Int64
}

// Open reads the state kept in dir (state.json and its journal): what the
// agent had when it stopped, or nothing the first time.
func Open(dir string, log *slog.Logger) (*Keeper, State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, State{}, err
	}
	k := &Keeper{f: &file{path: filepath.Join(dir, "state.json")}, log: log}
	st, err := k.f.load()
	return k, st, err
}

// SetSources says where the state comes from; before, nothing is saved.
func (k *Keeper) SetSources(src Sources) { k.src = src }

// Saves counts the writes of the state (snapshots and journal entries).
func (k *Keeper) Saves() int64 { return k.saves.Load() }

// Close releases the journal's descriptor.
func (k *Keeper) Close() { k.f.close() }

// SaveAll writes a snapshot of everything.
func (k *Keeper) SaveAll() error {
	if k.src.Records == nil {
		return nil
	}
	k.f.mu.Lock()
	defer k.f.mu.Unlock()
	st := State{Seq: k.f.seq, Networks: k.src.Networks(), Sandboxes: k.src.Records.Sandboxes(), Endpoints: k.src.Records.Endpoints()}
	st.Remote, st.Peers = k.src.Cache()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	k.saves.Add(1)
	// The snapshot includes every entry: once it is in place, they can go
	// (a crash in between replays none of them, all being older).
	if err := errors.Join(k.f.write(b), k.f.truncateJournal()); err != nil {
		k.log.Error("saving state", "err", err)
		return err
	}
	return nil
}

// SaveRecords saves the given sandboxes and endpoints as they are now (or
// their being gone, if they are), with the endpoints the sandboxes have
// now, in one journal entry; other records have not changed since the
// last save. Once the journal holds as many entries as there are
// records, it saves everything instead.
func (k *Keeper) SaveRecords(sandboxIDs, endpointIDs []string) error {
	recs := k.src.Records
	if recs == nil {
		return nil
	}
	k.f.mu.Lock()
	nsb, nep := recs.Counts()
	if k.f.entries >= max(journalMin, nsb+nep) {
		k.f.mu.Unlock()
		return k.SaveAll()
	}
	defer k.f.mu.Unlock()
	e := journalEntry{Seq: k.f.seq + 1}
	seen := map[string]bool{}
	endpoint := func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		if cur := recs.Endpoint(id); cur != nil {
			e.Endpoints = append(e.Endpoints, cur)
		} else {
			e.GoneEndpoints = append(e.GoneEndpoints, id)
		}
	}
	for _, id := range sandboxIDs {
		if cur := recs.Sandbox(id); cur != nil {
			e.Sandboxes = append(e.Sandboxes, cur)
			for _, eid := range cur.Endpoints {
				endpoint(eid)
			}
		} else {
			e.GoneSandboxes = append(e.GoneSandboxes, id)
		}
	}
	for _, id := range endpointIDs {
		endpoint(id)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	k.saves.Add(1)
	if err := k.f.appendRaw(b); err != nil {
		// The journal may end in part of a line now: the next save
		// replaces it with a snapshot.
		k.f.entries = math.MaxInt
		k.log.Error("saving state", "err", err)
		return err
	}
	k.f.seq = e.Seq
	return nil
}
