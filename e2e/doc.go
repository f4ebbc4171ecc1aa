// Package e2e holds meshnet's end-to-end tests: real meshagent processes,
// one per namespace host (testenv/cluster), on each real cluster store
// (the embedded etcd, an etcd server, Consul, ZooKeeper), driven through the agentctl
// binary as a user would, with real traffic between sandboxes crossing the
// kernel's VXLAN. They need root. MESHNET_TEST_STORES=etcd narrows the
// stores while developing; by default every store is run.
package e2e
