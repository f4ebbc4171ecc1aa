package cluster

import (
	"bytes"
	"io"
	"os"
)

// Tail returns the last n lines of the file at path (or why it cannot).
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// appendFile is a file written by appending, opened for each write: for
// marker lines in a log that a process also writes.
type appendFile string

var _ io.Writer = appendFile("")

func (p appendFile) Write(b []byte) (int, error) {
	f, err := os.OpenFile(string(p), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Write(b)
}

// DumpLogs passes the tail of every agent's and the store server's log
// to logf (t.Logf when a test failed).
func (c *Cluster) DumpLogs(logf func(format string, args ...any)) {
	for _, h := range c.Hosts() {
		if _, err := os.Stat(h.LogPath); err != nil {
			continue // a bare host whose agent never started (AddBareHost)
		}
		logf("--- last lines of meshagent %s log (%s):\n%s", h.Node, h.LogPath, Tail(h.LogPath, 80))
	}
	if p := c.StoreLog(); p != "" {
		logf("--- last lines of the %s store log:\n%s", c.opts.Store, Tail(p, 30))
	}
}
