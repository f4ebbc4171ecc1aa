// Package nsthread runs a function inside a network namespace on a thread
// of its own.
package nsthread

import (
	"runtime"

	"github.com/vishvananda/netns"
)

// Run runs fn on a new goroutine locked to its OS thread, switched into ns,
// and waits for it; with ns closed (netns.None) fn runs right here. What fn
// opens there (a socket, a file under /proc/sys/net) belongs to ns. The
// thread then goes back to its namespace, or, if it cannot, stays locked
// and dies with its goroutine, so no other goroutine runs in ns by mistake.
func Run(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
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
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
