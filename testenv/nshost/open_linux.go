package nshost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// OpenNS opens the existing named namespace /run/netns/NAME, made by
// someone else (a sandbox the agent created), to run code in it. Its
// Close releases the handle and leaves the namespace.
func OpenNS(name string) (*NS, error) {
	h, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("opening namespace %s: %w", name, err)
	}
	return &NS{Name: name, handle: h, borrowed: true}, nil
}

// RemoveAll deletes every named namespace whose name starts with prefix
// (/run/netns/PREFIX*) and the resolver files of each
// (/etc/netns/PREFIX*): what a test leaves behind, whoever made it.
// Equivalent to: `ip netns del NAME` for each.
func RemoveAll(prefix string) error {
	if prefix == "" || strings.ContainsAny(prefix, "/*?[") {
		return fmt.Errorf("refusing to remove namespaces by prefix %q", prefix)
	}
	var errs []error
	names, _ := filepath.Glob("/run/netns/" + prefix + "*")
	for _, p := range names {
		// A file that is not (or no longer) a mount is removed all the same.
		err := unix.Unmount(p, unix.MNT_DETACH)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			err = os.Remove(p)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("deleting namespace %s: %w", filepath.Base(p), err))
		}
	}
	dirs, _ := filepath.Glob("/etc/netns/" + prefix + "*")
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// OpenPath opens the network namespace at path (/proc/PID/ns/net of a
// container, say), to run code in it; name is what messages call it. Its
// Close releases the handle and leaves the namespace.
func OpenPath(name, path string) (*NS, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("opening namespace %s at %s: %w", name, path, err)
	}
	return &NS{Name: name, handle: h, borrowed: true}, nil
}
