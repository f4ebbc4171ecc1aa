package gossip

// The direct fan-out.
//
// Gossip alone takes a few rounds (GossipInterval each) to bring a record
// to every node, and a burst of records much longer: each round carries
// only what fits in one packet per peer. So a record this node writes is
// also sent straight to every other member at once, packed with the other
// writes made meanwhile into as few messages as fit in a packet
// (memberlist.SendBestEffort: one UDP packet each, encrypted like gossip).
// The receiver merges them as it merges gossip but passes nothing on (all
// members got the same); the writer's own epidemic broadcasts, relayed by
// whoever learns from them, and push/pull are the repair of a lost packet,
// not the way a record gets around.

import (
	"github.com/hashicorp/memberlist"
)

// fanoutBudget is the most record bytes one direct message carries: what
// fits in memberlist's UDP packet (UDPBufferSize, 1400) with its framing,
// its label and encryption overhead.
const fanoutBudget = maxRecordSize

// fanoutLoop sends the records queued in c.fanout to every other member.
func (c *Cluster) fanoutLoop() {
	for {
		batch, ok := c.fanout.take(c.done)
		if !ok {
			return
		}
		msgs := packMessages(batch)
		for _, n := range c.peers() {
			for _, m := range msgs {
				if err := c.ml.SendBestEffort(&n, m); err != nil {
					c.log.Debug("direct send failed; gossip repairs it", "member", n.Name, "err", err)
					break
				}
			}
		}
	}
}

// packMessages encodes records into messages of at most fanoutBudget
// record bytes each (a record alone may be up to maxRecordSize).
func packMessages(recs []wireRecord) [][]byte {
	var msgs [][]byte
	var cur [][]byte
	size := 0
	for i := range recs {
		b := encodeRecord(&recs[i])
		if len(b) > maxRecordSize {
			continue // never sendable; push/pull carries it (see broadcast.go)
		}
		if size+len(b) > fanoutBudget && len(cur) > 0 {
			msgs = append(msgs, packMessage(msgDirect, cur))
			cur, size = nil, 0
		}
		cur = append(cur, b)
		size += len(b)
	}
	if len(cur) > 0 {
		msgs = append(msgs, packMessage(msgDirect, cur))
	}
	return msgs
}

// peers are the alive and suspect members other than this node.
func (c *Cluster) peers() []memberlist.Node {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	out := make([]memberlist.Node, 0, len(c.members))
	for name, n := range c.members {
		if name != c.cfg.NodeName {
			out = append(out, n)
		}
	}
	return out
}
