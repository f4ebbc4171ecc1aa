package gossip

// memberlist integration.
//
// memberlist calls these methods from its packet, stream and state-machine
// goroutines, sometimes while holding its own locks, and a slow callback
// stalls failure detection for the whole node. So every callback does a
// bounded amount of in-memory work and returns: decode, merge into the table
// under its mutex, queue broadcasts. Anything that waits (rejoin exchanges,
// subscriber delivery) is handed to goroutines the Cluster owns. No callback
// calls back into memberlist.

import (
	"github.com/hashicorp/memberlist"
)

type delegate struct {
	c *Cluster
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

// NodeMeta returns the node metadata published with alive messages.
// Config.withDefaults refuses metadata over memberlist's limit, so it is
// never dropped in practice.
func (d *delegate) NodeMeta(limit int) []byte {
	meta := *d.c.meta.Load()
	if len(meta) > limit {
		return nil
	}
	return meta
}

// NotifyMsg handles a message from a peer: merge its records and, for a
// gossip message, pass on those that were news (the epidemic step). Records
// sent directly by their writer are not passed on: every member got them,
// and the writer's own broadcasts repair a lost packet.
func (d *delegate) NotifyMsg(buf []byte) {
	kind, recs, err := decodeKind(buf)
	if err != nil {
		d.c.log.Debug("dropping gossip message", "err", err)
		return
	}
	d.c.queueBroadcasts(d.c.table.applyAll(d.c.admit(recs, kind == msgRecords), kind == msgRecords))
}

// GetBroadcasts hands memberlist the records waiting to piggyback on its
// next gossip round, packed into one message.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	recs := d.c.bcast.take(limit - overhead - messageHeaderMax)
	if len(recs) == 0 {
		return nil
	}
	return [][]byte{packRecords(recs)}
}

// LocalState is this node's half of a push/pull exchange: the whole table.
func (d *delegate) LocalState(join bool) []byte {
	clock, recs := d.c.table.snapshot()
	return encodeState(clock, recs)
}

// MergeRemoteState merges the peer's half of a push/pull exchange.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	clock, recs, err := decodeState(buf)
	if err != nil {
		d.c.log.Warn("dropping remote state", "err", err)
		return
	}
	d.c.table.witness(clock)
	d.c.queueBroadcasts(d.c.table.applyAll(d.c.admit(recs, false), false))
}

// NotifyJoin, NotifyLeave and NotifyUpdate are called in order, one at a
// time, by memberlist's state machine with its node lock held: queue and
// return.
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	node := copyNode(n)
	d.c.trackMember(&node, true)
	d.c.memberEvents.push(memberEvent{join: true, node: node})
}

func (d *delegate) NotifyLeave(n *memberlist.Node) {
	node := copyNode(n)
	d.c.trackMember(&node, false)
	d.c.memberEvents.push(memberEvent{node: node})
}

func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	node := copyNode(n)
	d.c.trackMember(&node, true)
}

type memberEvent struct {
	join bool
	node memberlist.Node
}

func copyNode(n *memberlist.Node) memberlist.Node {
	c := *n
	c.Addr = append([]byte(nil), n.Addr...)
	c.Meta = append([]byte(nil), n.Meta...)
	return c
}
