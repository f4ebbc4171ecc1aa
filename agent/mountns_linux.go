package agent

import (
	"bufio"
	"os"
	"strings"
	"syscall"

	"github.com/meshnet/meshnet/agent/sandbox"
)

// privateMountNamespace reports whether the named sandboxes the agent
// makes (bind mounts under /run/netns) would stay invisible to the host:
// the agent runs in a mount namespace of its own, made by `ip netns exec`
// or by a unit with PrivateMounts=, PrivateTmp= or ProtectSystem=, from
// which mounts do not propagate back.
//
// It is judged twice over: by the propagation of the mount holding
// /run/netns (a slave of the host's, as `ip netns exec` leaves it, receives
// mounts but sends none), and, where PID 1's namespace can be read, by
// comparing the two namespaces. When neither tells, it reports false: the
// warning it drives is advice, not a check.
func privateMountNamespace() bool {
	if slaveMount(sandbox.RunDir) {
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

// slaveMount reports whether the mount holding path receives propagation
// from a peer group (master:N) without being shared itself.
// Equivalent to: `findmnt -o PROPAGATION --target PATH` saying "private,slave".
func slaveMount(path string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	best, slave := -1, false
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
		best, slave = len(mp), false
		shared := false
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			shared = shared || strings.HasPrefix(opt, "shared:")
			slave = slave || strings.HasPrefix(opt, "master:")
		}
		slave = slave && !shared
	}
	return slave
}
