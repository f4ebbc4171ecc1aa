package agent

import (
	"net"
	"net/netip"

	"github.com/meshnet/meshnet/kvstore"
)

// securityWarnings says, one sentence each, where this agent's
// configuration leaves the cluster open to a machine of the underlay: they
// are logged at start and shown by `agentctl info`.
func securityWarnings(cfg Config) []string {
	var out []string
	if len(cfg.GossipKey) == 0 {
		out = append(out, "gossip is neither encrypted nor authenticated: anyone on the underlay can read and forge endpoint records (set gossip-key, the same on every host)")
	}
	switch {
	case cfg.Store.Backend == kvstore.BackendEmbedded:
		out = append(out, "the embedded cluster store serves port 2379 without TLS or authentication: anyone who reaches it can read and change the cluster (keep it to the cluster's hosts)")
	case cfg.Store.CAFile == "" && !loopbackOnly(cfg.Store.Endpoints):
		out = append(out, "the cluster store "+cfg.Store.String()+" is reached without TLS: records and credentials cross the network in clear (cluster-store-opt ca, cert, key)")
	}
	if !cfg.IPTables {
		out = append(out, "iptables: false: networks are not isolated and the VXLAN port takes frames from anyone on the underlay")
	}
	return out
}

// loopbackOnly reports whether every endpoint is on this host's loopback.
func loopbackOnly(endpoints []string) bool {
	for _, e := range endpoints {
		host, _, err := net.SplitHostPort(e)
		if err != nil {
			host = e
		}
		a, err := netip.ParseAddr(host)
		if (err != nil || !a.IsLoopback()) && host != "localhost" {
			return false
		}
	}
	return len(endpoints) > 0
}
