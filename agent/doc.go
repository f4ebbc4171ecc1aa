// Package agent is meshagent's daemon: its configuration, the API on the
// unix socket, IPAM and leases in the cluster store (agent/ipam), sandboxes,
// and the drivers that program the datapath.
package agent
