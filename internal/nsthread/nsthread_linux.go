// Package nsthread runs a function on a thread of its own, which the
// function may move into another network namespace (setns, unshare): the
// only way meshnet enters a namespace. The caller's thread is never
// touched, and a thread that cannot be put back where it started is never
// handed back to the Go runtime: it stays locked and dies with its
// goroutine, so no other goroutine ever runs in the wrong namespace.
package nsthread

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Isolated runs fn on a new goroutine locked to its OS thread and waits for
// it. Afterwards the thread goes back to the network namespace it started
// in and is unlocked; if it cannot go back, it stays locked and the
// runtime terminates it.
func Isolated(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// /proc/self/task/TID works on every kernel; /proc/thread-self
		// needs 3.17.
		orig, err := unix.Open(ThreadNetNSPath(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
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

// Run runs fn on a thread of its own inside ns and waits for it; with ns
// closed (netns.None) fn runs right here. What fn opens there (a socket, a
// file under /proc/sys/net) belongs to ns.
func Run(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	return Isolated(func() error {
		if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("entering network namespace: %w", err)
		}
		return fn()
	})
}

// ThreadNetNSPath is the network namespace file of the calling thread,
// which must be locked to its goroutine (inside Isolated).
func ThreadNetNSPath() string {
	return fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
}
