package agent

import (
	"net"
	"net/netip"

	"github.com/meshnet/meshnet/kvstore"
)

// securityWarnings says, one sentence each, where this agent's
// configuration leaves the cluster open to a machine of the underlay: they
// are logged at start and shown by `agentctl info`.
// Gossip is always encrypted (gossip-key, or the store's keyring), and
// the embedded store always speaks TLS with client certificates; joined
// says this host has its certificate for another agent's embedded store.
func securityWarnings(cfg Config, joined bool) []string {
	var out []string
	switch {
	case cfg.Store.Backend == kvstore.BackendEmbedded, cfg.JoinToken != nil, joined && cfg.Store.Backend == kvstore.BackendEtcd:
	case cfg.Store.CAFile == "" && !loopbackOnly(cfg.Store.Endpoints):
		what := "records, credentials and the gossip key cross the network in clear"
		if len(cfg.GossipKey) > 0 {
			what = "records and credentials cross the network in clear"
		}
		out = append(out, "the cluster store "+cfg.Store.String()+" is reached without TLS: "+what+" (cluster-store-opt ca, cert, key)")
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
