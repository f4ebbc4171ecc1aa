package datapath

// A sandbox is named by a path (/run/netns/NAME, /proc/PID/ns/net) that is
// opened anew on every apply, and a path is not a namespace: a PID is
// reused, a name is unmounted and mounted again. An endpoint pinned to the
// namespace it was made for (LocalEndpoint.SandboxID) is only programmed
// through a descriptor whose identity, read from that very descriptor, is
// the pinned one; the same descriptor then serves for netlink, the veth's
// peer namespace and sysctls, so the path cannot change in between.

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/vishvananda/netns"

	"github.com/meshnet/meshnet/sandbox"
)

// openSandbox opens ep's sandbox namespace for programming. The namespace
// is checked on the descriptor returned: it must be a network namespace,
// not the host's own (hostID), and, for a pinned endpoint, the one pinned.
// Any of these failing is ErrSandboxGone, and the descriptor is closed. A
// pinned endpoint in its namespace costs one fstat: an nsfs inode that is
// the pinned one is that network namespace.
//
// What is left behind is deliberate. When the sandbox's namespace died,
// the kernel deleted its veth pair with it; there is nothing to clean. When
// the path now leads elsewhere while the pinned namespace may still live
// (held open by another process, or a name mounted over), the host end of
// our veth still leads to the old sandbox: it is neither moved into the
// new namespace nor deleted, and stays attached until the caller drops the
// endpoint from the desired state (then it is deleted like any unwanted
// veth, taking its peer along) or pins it to the namespace the path now
// leads to (then the pair is replaced, as for an endpoint that moved).
func openSandbox(ep *LocalEndpoint, hostID sandbox.NSID) (netns.NsHandle, error) {
	pinned := !ep.SandboxID.IsZero()
	ns, err := netns.GetFromPath(ep.Sandbox)
	if err != nil {
		if pinned && errors.Is(err, fs.ErrNotExist) {
			return ns, fmt.Errorf("%w: %s: %w", ErrSandboxGone, ep.Sandbox, err)
		}
		// An unpinned sandbox may not exist yet.
		return ns, fmt.Errorf("opening sandbox %s: %w", ep.Sandbox, err)
	}
	id, err := sandbox.StatFD(int(ns))
	if err == nil && (!pinned || id != ep.SandboxID) {
		err = sandbox.CheckFD(int(ns))
	}
	switch {
	case err != nil:
		err = fmt.Errorf("%w: %s: %w", ErrSandboxGone, ep.Sandbox, err)
	case id == hostID:
		err = fmt.Errorf("%w: %s leads to the host's own namespace", ErrSandboxGone, ep.Sandbox)
	case pinned && id != ep.SandboxID:
		err = fmt.Errorf("%w: %s now leads to %s, not %s", ErrSandboxGone, ep.Sandbox, id, ep.SandboxID)
	}
	if err != nil {
		ns.Close()
		return netns.None(), err
	}
	return ns, nil
}
