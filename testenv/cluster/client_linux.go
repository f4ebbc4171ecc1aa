package cluster

import (
	"github.com/meshnet/meshnet/agent/client"
)

// Client returns a Go API client of the host's agent (agent/client); the
// caller may Close it.
func (h *Host) Client() *client.Client {
	c, err := client.New(h.Socket)
	if err != nil {
		// The socket address is built by this package; New only fails on
		// a malformed one.
		panic("cluster: client of " + h.Socket + ": " + err.Error())
	}
	return c
}
