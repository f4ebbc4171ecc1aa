// Package portholder names the process that holds a port in the caller's
// network namespace, for a message better than "address already in use".
package portholder

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxFDs bounds how many descriptors are looked at, so that a host with
// very many processes is not walked for a message.
const maxFDs = 1 << 20

// Find returns the PID and command name of a process holding port (TCP:
// listening; UDP: bound) in the caller's network namespace; ok is false
// when none is found (another namespace's, or /proc unreadable).
// Equivalent to: `ss -lptn sport = :PORT` (or -lpun).
func Find(proto string, port int) (pid int, name string, ok bool) {
	inodes := map[string]bool{}
	state := "0A" // TCP_LISTEN
	if proto == "udp" {
		state = "07" // TCP_CLOSE, as unconnected UDP sockets show
	}
	// thread-self: the calling thread's namespace, which may not be the
	// process's (a thread locked into another one).
	for _, f := range []string{"/proc/thread-self/net/" + proto, "/proc/thread-self/net/" + proto + "6"} {
		for _, ino := range socketInodes(f, port, state) {
			inodes[ino] = true
		}
	}
	if len(inodes) == 0 {
		return 0, "", false
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	seen := 0
	for _, p := range procs {
		fds, _ := os.ReadDir(p + "/fd")
		for _, fd := range fds {
			if seen++; seen > maxFDs {
				return 0, "", false
			}
			link, err := os.Readlink(p + "/fd/" + fd.Name())
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				pid, _ = strconv.Atoi(filepath.Base(p))
				comm, _ := os.ReadFile(p + "/comm")
				return pid, strings.TrimSpace(string(comm)), true
			}
		}
	}
	return 0, "", false
}

// socketInodes reads a /proc/net table for the inodes of sockets on port
// in state.
func socketInodes(path string, port int, state string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !strings.HasSuffix(fields[1], want) || fields[3] != state {
			continue
		}
		out = append(out, fields[9])
	}
	return out
}
