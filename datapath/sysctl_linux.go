package datapath

import (
	"bytes"
	"fmt"
	"os"

	"github.com/vishvananda/netns"

	"github.com/meshnet/meshnet/internal/nsthread"
)

// writeSysctl writes a /proc/sys/net file of namespace ns (None: the
// caller's own).
// Equivalent to: `ip netns exec NS sysctl -w KEY=VALUE`.
func writeSysctl(ns netns.NsHandle, path, value string) error {
	err := nsthread.Run(ns, func() error { return os.WriteFile(path, []byte(value), 0o644) })
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
	err := nsthread.Run(ns, func() error {
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
