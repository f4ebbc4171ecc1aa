package datapath

import (
	"strconv"
	"time"

	"github.com/vishvananda/netns"
)

// SandboxARPRetrans is the ARP retransmit time of sandbox interfaces. The
// overlay answers ARP on the host from its neighbour entries, never over
// the wire, so a request for an endpoint the host has not learned yet
// costs nothing to repeat. The kernel's default (one second, three tries)
// would make a sandbox that asks a moment too early wait a whole second
// after the endpoint appeared; this makes it at most this long.
const SandboxARPRetrans = 50 * time.Millisecond

// setARPRetrans sets the ARP retransmit time of ifname in namespace ns.
// Equivalent to: `ip netns exec SANDBOX sysctl -w
// net.ipv4.neigh.IFNAME.retrans_time_ms=50`.
func setARPRetrans(ns netns.NsHandle, ifname string, d time.Duration) error {
	return writeSysctl(ns, "/proc/sys/net/ipv4/neigh/"+ifname+"/retrans_time_ms", strconv.FormatInt(d.Milliseconds(), 10))
}
