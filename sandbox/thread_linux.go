package sandbox

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/internal/nsthread"
)

// netlinkAt opens a route netlink socket inside the network namespace file
// path. The socket stays in that namespace and may be used from any
// goroutine. Unlike netlink.NewHandleAt, it never unlocks a thread it could
// not move back (see nsthread).
func netlinkAt(path string) (*netlink.Handle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	var h *netlink.Handle
	err = nsthread.Isolated(func() error {
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("entering network namespace %s: %w", path, err)
		}
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("opening netlink in %s: %w", path, err)
		}
		return nil
	})
	return h, err
}
