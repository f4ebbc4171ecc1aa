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
	"time"

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

// admit keeps the records that pass checkReceived, whose VTEP is the one
// their node announces (when it is a member) and, with an Identity, that
// are news and signed by their writer (sign.go), counting the others.
// Records whose writer's certificate has not come yet wait for it
// (retryPending); rebroadcast is how they are to be applied then.
func (c *Cluster) admit(recs []wireRecord, rebroadcast bool) []wireRecord {
	c.memMu.Lock()
	vteps := make(map[string]netip.Addr, len(c.members))
	for name, n := range c.members {
		if v := decodeMeta(n.Meta).VTEP; v.IsValid() {
			vteps[name] = v
		}
	}
	c.memMu.Unlock()
	id := c.sig.identity()
	if id != nil {
		recs = c.table.news(recs)
	}
	var wait []pendingRecord
	out := recs[:0]
	for i := range recs {
		r := &recs[i]
		err := checkReceived(r)
		if v, ok := vteps[r.Endpoint.Node]; err == nil && !r.Deleted && ok && v != r.Endpoint.VTEP {
			err = fmt.Errorf("VTEP %s, but node %s announces %s", r.Endpoint.VTEP, r.Endpoint.Node, v)
		}
		// A record in this node's own name needs no signature: the table
		// answers one it does not hold with what this node holds.
		if err == nil && id != nil && r.Version.Writer != c.cfg.NodeName {
			var tried []byte
			if tried, err = c.sig.verify(id, r); errors.Is(err, errNoCert) {
				wait = append(wait, pendingRecord{rec: *r, rebroadcast: rebroadcast})
				continue
			} else if err != nil {
				// Refused; but a writer may have a new certificate
				// that has not reached this node yet: try again then.
				wait = append(wait, pendingRecord{rec: *r, rebroadcast: rebroadcast, tried: tried})
			}
		}
		if err != nil {
			c.refuse(r, err)
			continue
		}
		out = append(out, *r)
	}
	if len(wait) > 0 {
		c.invalid.Add(uint64(c.sig.park(wait, time.Now())))
	}
	return out
}

func (c *Cluster) refuse(r *wireRecord, err error) {
	c.invalid.Add(1)
	c.log.Debug("refusing a gossip record", "network", r.Endpoint.Network, "id", r.Endpoint.ID, "writer", r.Version.Writer, "err", err)
}

// retryPending admits again, each time a certificate arrives and every
// second, the records that waited for their writers' certificates;
// those that waited pendingTTL are refused (push/pull brings them again).
func (c *Cluster) retryPending() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.sig.kick:
		case <-tick.C:
		}
		waiting, expired := c.sig.unpark(time.Now()) // those refused once are counted
		c.invalid.Add(uint64(expired))
		for _, rebroadcast := range []bool{false, true} {
			var recs []wireRecord
			for _, p := range waiting {
				if p.rebroadcast == rebroadcast {
					recs = append(recs, p.rec)
				}
			}
			if len(recs) > 0 {
				c.queueBroadcasts(c.table.applyAll(c.admit(recs, rebroadcast), rebroadcast))
			}
		}
	}
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
