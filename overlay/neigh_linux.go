package overlay

import (
	"fmt"
	"os"
	"runtime"
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

// writeSysctl writes a /proc/sys/net file of namespace ns (None: the
// caller's own).
func writeSysctl(ns netns.NsHandle, path, value string) error {
	if !ns.IsOpen() {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("setting %s: %w", path, err)
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		// /proc/sys/net is the namespace of the thread that opens it: a
		// thread of our own, which dies rather than return to the pool if
		// it cannot be switched back.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		err = os.WriteFile(path, []byte(value), 0o644)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("setting %s: %w", path, err)
	}
	return nil
}
