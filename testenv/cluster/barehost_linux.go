package cluster

// Hosts for timing a join: AddHost and Start wait for an agent by polling
// it every 50 ms, too coarse to time how soon a new host is usable, and a
// benchmark comparing meshnet with another overlay wants that other
// overlay on machines of the same underlay and store.

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/meshnet/meshnet/testenv"
)

// AddBareHost adds a host to the underlay as AddHost does (the next
// address 192.0.2.N, its agent configuration written) but starts no agent
// on it: a machine for another network agent to run on, or one whose
// agent Launch starts later. name is its node name; empty means nN. Its
// namespace is PREFIX-NAME and goes with the cluster.
func (c *Cluster) AddBareHost(name string) (*Host, error) {
	c.addMu.Lock()
	defer c.addMu.Unlock()
	c.mu.Lock()
	n := len(c.hosts) + 1
	c.mu.Unlock()
	if n >= int(StoreAddr.As4()[3]) {
		return nil, fmt.Errorf("too many hosts (%d)", n)
	}
	if name == "" {
		name = "n" + strconv.Itoa(n)
	}
	addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}), 24)
	nh, err := c.underlay.AddHost(name, addr)
	if err != nil {
		return nil, err
	}
	h := &Host{Host: nh, Node: name, Dir: filepath.Join(c.dir, name), c: c}
	h.Socket = "unix://" + filepath.Join(h.Dir, "agent.sock")
	h.LogPath = filepath.Join(h.Dir, "agent.log")
	if err := h.writeConfig(c.storeURL(n), c.storeOpts(), c.joinTokenFile(n)); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.hosts = append(c.hosts, h)
	c.mu.Unlock()
	return h, nil
}

// Launch starts the host's agent and returns as soon as the process is
// started, with the time just before it was, without waiting for the
// agent to serve (Start waits). Stop stops it as usual. Launching a
// running agent is an error.
func (h *Host) Launch() (time.Time, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc != nil {
		return time.Time{}, fmt.Errorf("meshagent on %s is running already", h.Node)
	}
	return h.launchLocked()
}

// launchLocked starts the agent process. The caller holds h.mu.
func (h *Host) launchLocked() (time.Time, error) {
	bin, args := h.c.bins.Agent, h.args()
	if w := h.c.opts.AgentWrapper; len(w) > 0 {
		bin, args = w[0], append(append(w[1:len(w):len(w)], bin), args...)
	}
	started := time.Now()
	fmt.Fprintf(appendFile(h.LogPath), "=== meshagent %s starting at %s\n", h.Node, started.Format(time.RFC3339Nano))
	p, err := testenv.StartProcess(bin, args, testenv.ProcessOptions{
		Log: h.LogPath, NS: h.NS, Env: childEnv()})
	if err != nil {
		return time.Time{}, err
	}
	h.proc = p
	return started, nil
}
