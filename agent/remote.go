package agent

import (
	"github.com/meshnet/meshnet/agent/membership"
	"github.com/meshnet/meshnet/agent/storeconn"
	"github.com/meshnet/meshnet/gossip"
)

// verifiedRemote is gossip's endpoints as the dataplane takes them: another
// host's only when the store's lease of its address names it and its
// node (storeconn.Conn.Holds), so that a member cannot draw someone
// else's traffic or name by announcing their address.
type verifiedRemote struct {
	*membership.Membership
	conn *storeconn.Conn
	node string
}

func (v verifiedRemote) Remote(networkID string) []gossip.Endpoint {
	return v.verified(networkID, v.Membership.Remote(networkID))
}

func (v verifiedRemote) Endpoints(networkID string) []gossip.Endpoint {
	return v.verified(networkID, v.Membership.Endpoints(networkID))
}

// Generation changes with gossip's endpoints and with the leases.
func (v verifiedRemote) Generation(networkID string) uint64 {
	return v.Membership.Generation(networkID) + v.conn.LeaseGeneration()
}

func (v verifiedRemote) verified(networkID string, eps []gossip.Endpoint) []gossip.Endpoint {
	out := make([]gossip.Endpoint, 0, len(eps))
	for _, ep := range eps {
		if ep.Node == v.node || v.conn.Holds(networkID, ep.IP, ep.ID, ep.Node) {
			out = append(out, ep)
		}
	}
	return out
}
