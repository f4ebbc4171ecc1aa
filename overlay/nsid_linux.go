package overlay

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
	"golang.org/x/sys/unix"
)

// nsGetNSType is NS_GET_NSTYPE, _IO(0xb7, 0x3) in <linux/nsfs.h>: the
// ioctl returning the CLONE_NEW* type of a namespace file.
const nsGetNSType = 0xb703

// IdentifyNS returns the identity of the network namespace at path
// (/run/netns/NAME, /proc/PID/ns/net, /proc/PID/task/TID/ns/net). It fails
// when path cannot be opened or is not a network namespace.
func IdentifyNS(path string) (NSID, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return NSID{}, fmt.Errorf("identifying namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	id, err := identifyFd(fd)
	if err != nil {
		return NSID{}, fmt.Errorf("identifying namespace %s: %w", path, err)
	}
	return id, nil
}

// identifyFd returns the identity of the network namespace open as fd, or
// says why fd is not one.
func identifyFd(fd int) (NSID, error) {
	if err := checkNetNS(fd); err != nil {
		return NSID{}, err
	}
	return statNS(fd)
}

// checkNetNS says why fd is not a network namespace, if it is not.
func checkNetNS(fd int) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return fmt.Errorf("reading its file system type: %w", err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%w: not a namespace file (file system type %#x, want nsfs)", ErrNotNetNS, fs.Type)
	}
	typ, err := unix.IoctlRetInt(fd, nsGetNSType)
	if err != nil {
		return fmt.Errorf("reading its namespace type: %w", err)
	}
	if typ != unix.CLONE_NEWNET {
		return fmt.Errorf("%w: a %s namespace", ErrNotNetNS, nsTypeName(typ))
	}
	return nil
}

// statNS returns the identity of the file open as fd, checked or not.
func statNS(fd int) (NSID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return NSID{}, fmt.Errorf("reading its inode: %w", err)
	}
	return NSID{Dev: st.Dev, Ino: st.Ino}, nil
}

// nsTypeName names a CLONE_NEW* namespace type as /proc/PID/ns does.
func nsTypeName(typ int) string {
	switch typ {
	case unix.CLONE_NEWNS:
		return "mnt"
	case unix.CLONE_NEWUTS:
		return "uts"
	case unix.CLONE_NEWIPC:
		return "ipc"
	case unix.CLONE_NEWUSER:
		return "user"
	case unix.CLONE_NEWPID:
		return "pid"
	case unix.CLONE_NEWCGROUP:
		return "cgroup"
	case unix.CLONE_NEWTIME:
		return "time"
	}
	return fmt.Sprintf("type %#x", typ)
}

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
func openSandbox(ep *LocalEndpoint, hostID NSID) (netns.NsHandle, error) {
	pinned := !ep.SandboxID.IsZero()
	ns, err := netns.GetFromPath(ep.Sandbox)
	if err != nil {
		if pinned && errors.Is(err, fs.ErrNotExist) {
			return ns, fmt.Errorf("%w: %s: %w", ErrSandboxGone, ep.Sandbox, err)
		}
		// An unpinned sandbox may not exist yet.
		return ns, fmt.Errorf("opening sandbox %s: %w", ep.Sandbox, err)
	}
	id, err := statNS(int(ns))
	if err == nil && (!pinned || id != ep.SandboxID) {
		err = checkNetNS(int(ns))
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
