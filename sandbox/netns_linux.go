package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/internal/netnsdir"
	"github.com/meshnet/meshnet/internal/nsthread"
)

// Create makes the named network namespace RunDir/NAME, with its loopback
// up, and returns its path. If the file exists already the error wraps
// ErrExists and nothing is changed. On any other failure nothing is left
// behind: no file, no mount.
// Equivalent to: `ip netns add NAME; ip -n NAME link set lo up`.
func Create(name Name) (string, error) {
	if err := name.check(); err != nil {
		return "", err
	}
	path, err := newNetNSFile(name)
	if err != nil {
		return "", err
	}
	if err := nsthread.Isolated(func() error { return bindNetNS(path) }); err != nil {
		return "", errors.Join(fmt.Errorf("creating sandbox namespace %s: %w", name, err), removeNetNSFile(path))
	}
	return path, nil
}

// Attach makes the sandbox name the existing network namespace at target
// (the host's, or another sandbox's): RunDir/NAME becomes a bind mount of
// it, so `ip netns exec NAME` enters it. Remove later detaches the name
// and leaves the namespace, which others still use, alone. Existing names
// are ErrExists; on failure nothing is left behind.
// Equivalent to: `ip netns attach NAME PID` (with a path instead of a PID).
func Attach(name Name, target string) (string, error) {
	if err := name.check(); err != nil {
		return "", err
	}
	if _, err := Identify(target); err != nil {
		return "", err
	}
	path, err := newNetNSFile(name)
	if err != nil {
		return "", err
	}
	if err := unix.Mount(target, path, "none", unix.MS_BIND, ""); err != nil {
		return "", errors.Join(fmt.Errorf("bind-mounting %s onto %s: %w", target, path, err), removeNetNSFile(path))
	}
	return path, nil
}

// newNetNSFile makes RunDir ready and creates the empty file RunDir/NAME
// that a namespace is then mounted on; ErrExists if it is there already.
func newNetNSFile(name Name) (string, error) {
	if err := netnsdir.Prepare(); err != nil {
		return "", err
	}
	path := Path(name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("sandbox namespace %s %w", name, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("creating namespace file %s: %w", path, err)
	}
	_ = unix.Close(fd)
	return path, nil
}

// bindNetNS is bindNewNetNS; tests replace it to make Create fail late.
var bindNetNS = bindNewNetNS

// bindNewNetNS moves the calling thread (locked, see nsthread) into a new
// network namespace, sets its loopback up and bind-mounts it onto path,
// which keeps it alive after the thread leaves. A failure before the mount
// leaves nothing: the namespace dies with the thread's reference.
func bindNewNetNS(path string) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unsharing the network namespace: %w", err)
	}
	if err := setLoopbackUp(); err != nil {
		return err
	}
	if err := unix.Mount(nsthread.ThreadNetNSPath(), path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting the namespace onto %s: %w", path, err)
	}
	return nil
}

// setLoopbackUp sets "lo" up in the calling thread's network namespace.
// Equivalent to: `ip link set lo up`.
func setLoopbackUp() error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("opening netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("setting lo up: %w", err)
	}
	return nil
}

// Remove deletes the sandbox name: it detaches the namespace from
// RunDir/NAME, deletes that file and the directory EtcDir/NAME. Missing
// pieces are not an error, so Remove may be repeated. The namespace itself
// lives on while a process or open file still refers to it.
// Equivalent to: `ip netns delete NAME; rm -rf /etc/netns/NAME`.
func Remove(name Name) error {
	if err := name.check(); err != nil {
		return err
	}
	return errors.Join(removeNetNSFile(Path(name)), RemoveFiles(name))
}

// removeNetNSFile unmounts everything mounted on path (a file in RunDir)
// and deletes it; a missing file or mount is fine.
func removeNetNSFile(path string) error {
	// A file may carry stacked mounts (a racing `ip netns attach`); take
	// them all off. UMOUNT_NOFOLLOW: a symlink planted there must not make
	// us unmount its target.
	for i := 0; ; i++ {
		err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("unmounting %s: %w", path, err)
		}
		if i == 100 {
			return fmt.Errorf("unmounting %s: still mounted after %d unmounts", path, i+1)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting %s: %w", path, err)
	}
	return nil
}

// Exists reports whether RunDir/NAME is a network namespace.
// Equivalent to: `ip netns list | grep -qx NAME`, but checking the file.
func Exists(name Name) bool {
	if name.IsZero() {
		return false
	}
	_, err := Identify(Path(name))
	return err == nil
}
