package gossip

// What a received record must be before the table takes it: as strict as
// a local write (Endpoint.validate), and bound to its writer. memberlist
// does not say who sent a message (a record may come through any member),
// so the binding is on what the record says: a live record is written by
// the node it places the endpoint on, at that node's VTEP as the node
// announces it in its own membership; a record never takes over another
// writer's live endpoint; a tombstone deletes only an endpoint its writer
// holds; and a node that receives a record about its own endpoint which
// it did not write answers with its own, newer (table.go).

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/meshnet/meshnet/internal/names"
)

// Bounds of a received record beyond what the codec checks.
const (
	maxIDLen      = 128
	maxAliases    = 64
	maxResidual   = 24 * 60 * 60 * 1000 // ms: a tombstone's remaining life
	maxSandboxLen = 255
)

// checkReceived checks one record as a peer sent it.
func checkReceived(r *wireRecord) error {
	w := r.Version.Writer
	if w == "" || len(w) > maxNodeNameLen || names.CheckDNS(w) != nil {
		return fmt.Errorf("writer %.40q is not a node name", w)
	}
	e := &r.Endpoint
	for what, s := range map[string]string{"network": e.Network, "endpoint ID": e.ID} {
		if s == "" || len(s) > maxIDLen || names.CheckDNS(s) != nil {
			return fmt.Errorf("%s %.40q is not an identifier", what, s)
		}
	}
	if r.Deleted {
		if r.Residual < 0 || r.Residual.Milliseconds() > maxResidual {
			return fmt.Errorf("tombstone life %v", r.Residual)
		}
		return nil
	}
	if e.Node != w {
		return fmt.Errorf("endpoint on node %.40q written by %.40q", e.Node, w)
	}
	if err := e.validate(w); err != nil {
		return err
	}
	if !unicast(e.IP) || (e.IPv6.IsValid() && !unicast(e.IPv6)) || e.VTEP.IsLoopback() {
		return fmt.Errorf("address %s, %s or VTEP %s is not a unicast address of a host", e.IP, e.IPv6, e.VTEP)
	}
	if len(e.MAC) == 6 && (e.MAC[0]&1 != 0 || [6]byte(e.MAC) == [6]byte{}) {
		return fmt.Errorf("MAC %s is not a unicast address", e.MAC)
	}
	if e.Name != "" && names.CheckDNS(e.Name) != nil {
		return fmt.Errorf("name %.40q is not a DNS name", e.Name)
	}
	if len(e.Aliases) > maxAliases {
		return fmt.Errorf("%d aliases, limit %d", len(e.Aliases), maxAliases)
	}
	for _, a := range e.Aliases {
		if err := names.CheckDNS(a); err != nil {
			return errors.New("an alias is not a DNS name")
		}
	}
	if len(e.Sandbox) > maxSandboxLen || names.CheckDNS(e.Sandbox) != nil && e.Sandbox != "" {
		return fmt.Errorf("sandbox %.40q is not a name", e.Sandbox)
	}
	return nil
}

// unicast reports whether a is an address a sandbox may have.
func unicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// admit keeps the records that pass checkReceived and whose VTEP is the
// one their node announces (when it is a member), counting the others.
func (c *Cluster) admit(recs []wireRecord) []wireRecord {
	c.memMu.Lock()
	vteps := make(map[string]netip.Addr, len(c.members))
	for name, n := range c.members {
		if v, _ := decodeMeta(n.Meta); v.IsValid() {
			vteps[name] = v
		}
	}
	c.memMu.Unlock()
	out := recs[:0]
	for i := range recs {
		r := &recs[i]
		err := checkReceived(r)
		if v, ok := vteps[r.Endpoint.Node]; err == nil && !r.Deleted && ok && v != r.Endpoint.VTEP {
			err = fmt.Errorf("VTEP %s, but node %s announces %s", r.Endpoint.VTEP, r.Endpoint.Node, v)
		}
		if err != nil {
			c.invalid.Add(1)
			c.log.Debug("refusing a gossip record", "network", r.Endpoint.Network, "id", r.Endpoint.ID, "writer", r.Version.Writer, "err", err)
			continue
		}
		out = append(out, *r)
	}
	return out
}

// Refusals counts what this node refused to take.
type Refusals struct {
	Invalid    uint64 // received records malformed or not bound to their writer (admit.go)
	Takeovers  uint64 // records about another writer's endpoint (table.go)
	TableFull  uint64 // records about new endpoints while the table was full (maxEntries)
	QueueDrops uint64 // queued items dropped from full queues (maxQueue)
}

// Refusals counts what this node refused to take.
func (c *Cluster) Refusals() Refusals {
	full, takeovers := c.table.refused()
	return Refusals{Invalid: c.invalid.Load(), Takeovers: takeovers, TableFull: full, QueueDrops: c.dropped.Load()}
}
