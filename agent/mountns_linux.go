package agent

import (
	"bufio"
	"os"
	"strings"
	"syscall"

	"github.com/meshnet/meshnet/sandbox"
)

// privateMountNamespace reports whether the named sandboxes the agent
// makes (bind mounts under /run/netns) would stay invisible to the host:
// the agent runs in a mount namespace of its own, made by `ip netns exec`
// or by a unit with PrivateMounts=, PrivateTmp= or ProtectSystem=, from
// which mounts do not propagate back.
//
// It is judged by the propagation of the mount holding /run/netns: shared
// sends our mounts to its peers (a container given the host's /run/netns
// with rshared is fine); a slave of the host's, as `ip netns exec` leaves
// it, receives mounts but sends none. A private mount is fine only in the
// host's own mount namespace, which is told by comparing with PID 1's
// where that can be read. When nothing tells, it reports false: the
// warning it drives is advice, not a check.
func privateMountNamespace() bool {
	switch mountPropagation(sandbox.RunDir) {
	case "shared":
		return false
	case "slave":
		return true
	}
	self, err1 := os.Stat("/proc/self/ns/mnt")
	init, err2 := os.Stat("/proc/1/ns/mnt")
	if err1 != nil || err2 != nil {
		return false
	}
	s, ok1 := self.Sys().(*syscall.Stat_t)
	i, ok2 := init.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && (s.Dev != i.Dev || s.Ino != i.Ino)
}

// mountPropagation says how the mount holding path propagates: "shared"
// (a peer group, whatever else), "slave" (receives only) or "private".
// Equivalent to: `findmnt -o PROPAGATION --target PATH`.
func mountPropagation(path string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	best, prop := -1, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		mp := fields[4]
		if !(path == mp || mp == "/" || strings.HasPrefix(path, mp+"/")) || len(mp) < best {
			continue
		}
		best, prop = len(mp), "private"
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			switch {
			case strings.HasPrefix(opt, "shared:"):
				prop = "shared"
			case strings.HasPrefix(opt, "master:") && prop != "shared":
				prop = "slave"
			}
		}
	}
	return prop
}
