package agent

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

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
	if w := configFileWarning(cfg.ConfigFile); w != "" {
		out = append(out, w)
	}
	if flags := secretFlags(cfg.Args); len(flags) > 0 {
		out = append(out, "secrets given as flags ("+strings.Join(flags, ", ")+") show in the process list to every user: put them in the configuration file (mode 0600), a file (cluster-token-file) or MESHNET_ variables")
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

// secretKeys are the configuration keys whose values are secrets, and
// the cluster-store-opt options that are.
var (
	secretKeys     = []string{"gossip-key", "cluster-token"}
	secretStoreOpt = []string{"password=", "token="}
)

// configFileWarning says when the configuration file holds secrets and
// other users may read it; "" otherwise.
func configFileWarning(path string) string {
	if path == "" {
		return ""
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var keys map[string]any
	if yaml.Unmarshal(b, &keys) != nil {
		return ""
	}
	var held []string
	for _, k := range secretKeys {
		if v, ok := keys[k]; ok && fmt.Sprint(v) != "" {
			held = append(held, k)
		}
	}
	opts := fmt.Sprint(keys["cluster-store-opt"])
	for _, o := range secretStoreOpt {
		if strings.Contains(opts, o) {
			held = append(held, "cluster-store-opt "+strings.TrimSuffix(o, "="))
		}
	}
	if len(held) == 0 {
		return ""
	}
	return fmt.Sprintf("the configuration file %s holds secrets (%s) and other users can read it (mode %04o): chmod 600 %s",
		path, strings.Join(held, ", "), st.Mode().Perm(), path)
}

// secretFlags lists the flags on the command line args that carry a
// secret.
func secretFlags(args []string) []string {
	var out []string
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if slices.Contains(secretKeys, name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
		if name == "cluster-store-opt" {
			if !hasValue && i+1 < len(args) {
				value = args[i+1]
			}
			for _, o := range secretStoreOpt {
				if strings.HasPrefix(value, o) && !slices.Contains(out, "cluster-store-opt "+strings.TrimSuffix(o, "=")) {
					out = append(out, "cluster-store-opt "+strings.TrimSuffix(o, "="))
				}
			}
		}
	}
	return out
}
