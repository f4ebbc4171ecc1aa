// Package cluster runs a meshnet cluster on one machine for end-to-end
// tests and the demo: N hosts made of network namespaces on an underlay
// switch (testenv/nshost), a real cluster store (the first agent's
// embedded etcd, an etcd server process, a Consul server or a ZooKeeper
// server, each in a namespace on the underlay), and one real meshagent process per host,
// started inside its host's namespace with its own data dir, socket,
// configuration file and log, driven with the real agentctl binary.
//
// Every namespace a cluster makes, and every sandbox a test names with
// [Cluster.Name], carries the cluster's prefix (nshost.Prefix), so that
// tests of many packages run side by side and Close removes everything a
// test left behind, even after a failure. Processes are stopped by PID.
package cluster
