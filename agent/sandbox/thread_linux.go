package sandbox

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// threadNetNSPath returns the network namespace file of the calling thread
// (which must be locked to its goroutine). /proc/self/task/TID works on
// every kernel; /proc/thread-self needs 3.17.
func threadNetNSPath() string {
	return fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
}

// onThread runs fn on a new goroutine locked to its OS thread and waits for
// it. fn may move the thread into another network namespace (by setns or
// unshare); afterwards the thread is moved back into the namespace it
// started in and unlocked. If that fails, the goroutine exits still locked
// and the runtime terminates the thread, so no other goroutine ever runs in
// the wrong namespace. The caller's own thread is never touched.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open(threadNetNSPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread() // nothing has moved yet
			errc <- fmt.Errorf("opening the thread's network namespace: %w", err)
			return
		}
		err = fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: exit locked, the thread dies with this goroutine
		_ = unix.Close(orig)
		errc <- err
	}()
	return <-errc
}

// netlinkAt opens a route netlink socket inside the network namespace file
// path. The socket stays in that namespace and may be used from any
// goroutine. Unlike netlink.NewHandleAt, it never unlocks a thread it could
// not move back (see onThread).
func netlinkAt(path string) (*netlink.Handle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	var h *netlink.Handle
	err = onThread(func() error {
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
