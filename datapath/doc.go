// Package overlay turns "network N with VNI V exists on this host, these
// sandboxes are attached here and these remote endpoints live behind these
// VTEPs" into kernel state: a Linux bridge and a VXLAN device per network,
// permanent FDB and neighbour entries per remote endpoint, and a veth pair per
// local endpoint. It knows nothing of the cluster store or gossip.
//
// The same datapath serves host-local networks (the `bridge` driver,
// Docker's docker0 model): a network with VNI 0 is a bridge alone, named by
// the caller (Network.Bridge, such as "mesh0"), with no VXLAN device, no
// remote endpoints and so no FDB or neighbour entries; everything else
// (veths, addresses, gateway, default routes, ownership, repair, teardown)
// is the same. NAT is not this package's business.
//
// # Model
//
// The caller describes the desired state ([Network]) and calls
// [Datapath.Apply] (all networks of this host) or [Datapath.ApplyNetwork]
// (one network). Apply reads what the kernel has — one link dump and one
// address dump, then one FDB dump and one neighbour dump (both families) per
// overlay network — computes the difference and writes only that, with
// replace semantics (`bridge fdb replace`, `ip neigh replace`); it also
// reads the IPv6 policy rules once, each bridge's forwarding switch, and
// the identity of each sandbox it opens. It is safe to call any number of
// times; a call that changes nothing writes nothing. Drift is repaired on
// the next call: a device deleted behind our back is recreated, a device
// whose VXLAN parameters differ is recreated, wrong VTEPs, MACs, MTUs and
// policies are rewritten, foreign FDB and neighbour entries on our devices
// are removed. Errors of one entry or
// one endpoint do not stop the rest: they are joined ([errors.Join]) and the
// next Apply finishes the job.
//
// The kernel is the only state. Reference counting of FDB entries shared by
// several endpoints (same MAC, for example an endpoint's IPv4 and IPv6
// addresses, or endpoints behind one MAC) falls out of the diff: an FDB entry
// stays as long as one desired endpoint references it.
//
// # Kernel policy
//
// The desired network carries its kernel policy, reconciled on every apply
// like its devices, never a side effect of creating them: the MTU (0: the
// underlay device's minus [EncapOverheadFor] its VTEP, [DefaultLocalMTU]
// for a local network) and whether the host routes what arrives on the
// bridge ([Network.Forwarding]).
// The host holds every network's gateway, so a network that does not
// forward (the zero value) is isolated: IPv4 through the bridge's own
// switch (net.ipv4.conf.BRIDGE.forwarding=0), IPv6, which has no such
// switch, through a policy rule at [IsolationRulePriority] (`ip -6 rule
// add priority 1000 iif BRIDGE prohibit`) for a network with an IPv6
// gateway. A new bridge gets its policy before it is up; drift (a hand
// edit, net.ipv4.ip_forward=1 resetting every interface) is repaired on
// the next apply; a network's rule goes with it, and Apply sweeps rules at
// that priority that no desired network wants, as rules outlive the
// bridges they name.
//
// # Sandboxes
//
// A sandbox is named by a path to its network namespace, opened on every
// apply, and a path is not a namespace: a PID is reused, a name mounted
// again. A namespace's identity is its [sandbox.NSID] ([sandbox.Identify]); a local
// endpoint pinned to one ([LocalEndpoint.SandboxID]) is programmed only
// through a descriptor of that very namespace, checked on the descriptor
// then used for everything else, and a path that is missing or leads
// elsewhere is reported as [ErrSandboxGone] with nothing touched inside it
// (the endpoint's host veth is left alone too: its peer is gone with its
// namespace, or still in the old one). No endpoint, pinned or not, is ever
// programmed into the host's own namespace or through a file that is not a
// network namespace.
//
// # Ownership and names
//
// Device names derive from the VNI, which the cluster leases uniquely:
// bridge "mnbr-<vni>", VXLAN "mnvx-<vni>" (at most 13 bytes, within
// IFNAMSIZ), unless the caller names the bridge (Network.Bridge; local
// networks must). A network whose VNI or bridge name changes, or that turns
// from overlay to local or back, gets the devices it now needs and loses
// those it no longer does. Host ends of veth pairs are "mnve" followed by 10
// hex digits of a SHA-256 of the network and endpoint ids. Every device we
// create carries a link alias ("meshnet:net=<id>" or
// "meshnet:net=<id>:ep=<id>", see `ip link show`); a device with a name we
// want but without our alias, or of the wrong type, is reported as
// [ErrForeignDevice] and left alone: an administrator's own bridge called
// like ours is never taken over.
// Teardown deletes exactly the devices that carry our alias.
//
// # Addresses
//
// MACs derive from IPv4 addresses ([MACFromIPv4]): 02:6d:a.b.c.d, a locally
// administered unicast prefix ("m" = 0x6d for meshnet) followed by the four
// address bytes, so every host computes the same MAC for an endpoint without
// asking. When a network has a gateway, every host's bridge holds the gateway
// address with the MAC derived from it (for an overlay network, a
// distributed gateway): sandboxes' default routes point at it and ARP for it
// is answered on the local host. A network without a gateway leaves its
// bridge without an address and its sandboxes without a default route.
package datapath
