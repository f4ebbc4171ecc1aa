// Package networks keeps the networks this host knows — the global ones
// mirrored from the cluster store, the local ones of this host — and runs
// their life cycle: a request checked into a network (its driver says
// what it may be), created with its leases (global: in the store, by
// agent/netstore, in one transaction; local: subnets picked here), and
// removed. Predefined networks come from the drivers that have some.
//
// Records are values once in the table (a change replaces the record),
// so a reader holds a consistent record without a lock; the table's lock
// is a leaf, held only for its maps.
package networks

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/internal/ids"
	"github.com/meshnet/meshnet/agent/netstore"
)

// Table holds the networks. Its methods are safe for concurrent use; the
// records it returns must not be changed.
type Table struct {
	mu       sync.Mutex // guards the maps below; a leaf lock
	nets     map[string]*driver.Network
	versions map[string]uint64 // store versions of global networks' records, 0 unknown
}

// NewTable returns a table holding the networks given (from the data
// dir).
func NewTable(nets []*driver.Network) *Table {
	t := &Table{nets: map[string]*driver.Network{}, versions: map[string]uint64{}}
	for _, n := range nets {
		t.nets[n.ID] = n
	}
	return t
}

// Find looks a network up by full id, name, or unique id prefix.
func (t *Table) Find(ref string) (*driver.Network, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return ids.Find(t.nets, ref, "network", func(n *driver.Network) string { return n.Name })
}

// Get returns the network with the id, or nil.
func (t *Table) Get(id string) *driver.Network {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nets[id]
}

// Record returns a global network's record with the store version it was
// read at, as one pair: a lease is fenced by the version of this very
// record.
func (t *Table) Record(id string) (netstore.Record, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.nets[id]
	return netstore.Record{Network: n, Version: t.versions[id]}, ok
}

// All lists the networks, by name.
func (t *Table) All() []*driver.Network {
	t.mu.Lock()
	out := make([]*driver.Network, 0, len(t.nets))
	for _, n := range t.nets {
		out = append(out, n)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(x, y *driver.Network) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// Len is the number of networks.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.nets)
}

// add records a network this host created unless the table has it
// already (the store's watch may have brought it first); it reports
// whether it added it.
func (t *Table) add(n *driver.Network) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.nets[n.ID]; ok {
		return false
	}
	t.nets[n.ID] = n
	return true
}

// drop forgets a network; it reports whether the table had it.
func (t *Table) drop(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.nets[id]
	delete(t.nets, id)
	delete(t.versions, id)
	return ok
}

// dropGlobal forgets a global network; it reports whether the table had
// it.
func (t *Table) dropGlobal(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.nets[id]
	if !ok || !n.Global() {
		return false
	}
	delete(t.nets, id)
	delete(t.versions, id)
	return true
}

// putGlobal puts a store record into the mirror and reports whether the
// network changed. A record the mirror already holds (the echo of this
// agent's own create) only updates the version, and so does the mark of
// a removal in progress. A marked record of a network the mirror has
// dropped already (this agent removed it) is not brought back.
func (t *Table) putGlobal(r netstore.Record) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := r.Network.ID
	old := t.nets[id]
	if old == nil && r.Network.Removing {
		return false
	}
	t.nets[id] = r.Network
	t.versions[id] = r.Version
	return old == nil || !sameRecord(old, r.Network)
}

// replaceGlobal makes the mirror hold exactly the listed global networks
// (local ones stay) and returns the ids that changed.
func (t *Table) replaceGlobal(recs []netstore.Record) []string {
	fresh := map[string]netstore.Record{}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range recs {
		if r.Malformed {
			// A record that went bad (forged, corrupt): keep what it
			// said when it was good, if anything.
			if old := t.nets[r.Network.ID]; old != nil && old.Global() {
				fresh[old.ID] = netstore.Record{Network: old, Version: t.versions[old.ID]}
			}
			continue
		}
		fresh[r.Network.ID] = r
	}
	var changed []string
	for id, n := range t.nets {
		if n.Global() && fresh[id].Network == nil {
			delete(t.nets, id)
			delete(t.versions, id)
			changed = append(changed, id)
		}
	}
	for id, r := range fresh {
		if old := t.nets[id]; old == nil || !sameRecord(old, r.Network) {
			changed = append(changed, id)
		}
		// The record always goes with its version (a lease is fenced by
		// the pair), even when only the removal mark differs.
		t.nets[id] = r.Network
		t.versions[id] = r.Version
	}
	return changed
}

// replacePredefined makes a driver's predefined networks those given
// (ids kept or new), dropping its others.
func (t *Table) replacePredefined(driverName string, nets []*driver.Network) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, n := range t.nets {
		if n.Predefined && n.Driver == driverName {
			delete(t.nets, id)
		}
	}
	for _, n := range nets {
		t.nets[n.ID] = n
	}
}

// sameRecord reports whether two records of a network say the same, but
// for the mark of a removal in progress. They are compared as stored.
func sameRecord(x, y *driver.Network) bool {
	cx, cy := *x, *y
	cx.Removing, cy.Removing = false, false
	bx, err1 := json.Marshal(&cx)
	by, err2 := json.Marshal(&cy)
	return err1 == nil && err2 == nil && bytes.Equal(bx, by)
}
