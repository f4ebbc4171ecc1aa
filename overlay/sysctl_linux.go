package overlay

import (
	"bytes"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
)

// writeSysctl writes a /proc/sys/net file of namespace ns (None: the
// caller's own).
// Equivalent to: `ip netns exec NS sysctl -w KEY=VALUE`.
func writeSysctl(ns netns.NsHandle, path, value string) error {
	err := inNS(ns, func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("setting %s: %w", path, err)
	}
	return nil
}

// ensureSysctl reads a /proc/sys/net file of namespace ns (None: the
// caller's own) and writes value into it when it holds something else,
// both in one visit to the namespace.
// Equivalent to: `ip netns exec NS sysctl KEY`, then `sysctl -w KEY=VALUE`
// if it differs.
func ensureSysctl(ns netns.NsHandle, path, value string) error {
	err := inNS(ns, func() error {
		have, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if string(bytes.TrimSpace(have)) == value {
			return nil
		}
		return os.WriteFile(path, []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("setting %s: %w", path, err)
	}
	return nil
}

// inNS runs fn in namespace ns, or right here when ns is None. /proc/sys/net
// shows the namespace of the thread that opens a file in it, so fn runs on
// a thread of its own, which dies rather than return to the pool if it
// cannot be switched back.
func inNS(ns netns.NsHandle, fn func() error) error {
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
