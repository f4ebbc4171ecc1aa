package sandbox

// A sandbox is named by a path (/run/netns/NAME, /proc/PID/ns/net), and a
// path is not a namespace: a PID is reused, a name is unmounted and mounted
// again. Its identity, read from an open descriptor, is what the agent pins
// a sandbox to.

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Identify returns the identity of the network namespace at path
// (/run/netns/NAME, /proc/PID/ns/net, /proc/PID/task/TID/ns/net). It fails
// when path cannot be opened or is not a network namespace (wrapping
// ErrNotNetNS). The path's file system is checked before it is opened:
// opening anything else (a FIFO, a device) could block or have side
// effects.
func Identify(path string) (NSID, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return NSID{}, fmt.Errorf("checking network namespace %s: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return NSID{}, fmt.Errorf("%s is %w (not a namespace file)", path, ErrNotNetNS)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return NSID{}, fmt.Errorf("checking network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := CheckFD(fd); err != nil {
		return NSID{}, fmt.Errorf("%s %w", path, err)
	}
	return StatFD(fd)
}

// CheckFD says why the file open as fd is not a network namespace, if it
// is not; the error reads after the file's name and wraps ErrNotNetNS.
func CheckFD(fd int) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return fmt.Errorf("cannot be checked: %w", err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("is %w (not a namespace file)", ErrNotNetNS)
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("cannot be checked: reading its namespace type: %w", err)
	}
	if typ != unix.CLONE_NEWNET {
		return fmt.Errorf("is %w (it is a %s namespace)", ErrNotNetNS, nsTypeName(typ))
	}
	return nil
}

// StatFD returns the identity of the file open as fd, checked or not.
func StatFD(fd int) (NSID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return NSID{}, fmt.Errorf("reading a namespace's inode: %w", err)
	}
	return NSID{Dev: st.Dev, Ino: st.Ino}, nil
}

// nsTypeName names a CLONE_NEW* namespace type.
func nsTypeName(typ int) string {
	switch typ {
	case unix.CLONE_NEWNS:
		return "mount"
	case unix.CLONE_NEWUTS:
		return "UTS"
	case unix.CLONE_NEWIPC:
		return "IPC"
	case unix.CLONE_NEWUSER:
		return "user"
	case unix.CLONE_NEWPID:
		return "PID"
	case unix.CLONE_NEWCGROUP:
		return "cgroup"
	case unix.CLONE_NEWTIME:
		return "time"
	}
	return fmt.Sprintf("type %#x", typ)
}
