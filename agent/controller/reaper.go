package controller

import (
	"errors"
	"io/fs"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/sandbox"
)

// namespaceGone reports whether a sandbox's namespace is gone for good:
// its path leads nowhere or to something else than the namespace it was
// pinned to. A failure to tell (too many open files, say) is not "gone".
func (t *sandboxSteps) namespaceGone(s *sandboxes.Sandbox) (bool, error) {
	id, err := t.ns.Identify(s.NetNS)
	switch {
	case err == nil:
		return !s.NSID.IsZero() && id != s.NSID, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ESRCH), errors.Is(err, sandbox.ErrNotNetNS):
		return true, err
	}
	return false, err
}

// Reaper keeps this host's sandboxes in step with their namespaces:
// those whose namespace went without their runtime saying so are
// forgotten, and at start each adopted one is pinned to its namespace
// again.
type Reaper struct{ c *Controller }

// Reaper returns the controller's reaper.
func (c *Controller) Reaper() Reaper { return Reaper{c} }

// ReapGone forgets the sandboxes whose namespace is gone, or whose path
// now leads to another namespace (a process that exited and its PID
// reused, a named namespace deleted and made anew): their endpoints leave
// (peers are told) and give their leases back. The new namespace at such
// a path is never touched. A sandbox sharing a gone one's namespace goes
// with it.
func (r Reaper) ReapGone() {
	c := r.c
	check := c.Records.Sandboxes()
	var gone []*sandboxes.Sandbox
	for _, s := range check {
		if s.Handoff {
			continue // the runtime's to tell (Docker: Leave)
		}
		if g, err := c.sbs.namespaceGone(s); g {
			gone = append(gone, s)
		} else if err != nil {
			c.log.Warn("cannot check a sandbox's namespace; trying again later", "sandbox", s.Name, "err", err)
		}
	}
	for _, s := range check {
		if s.SharedFrom != "" && slices.ContainsFunc(gone, func(o *sandboxes.Sandbox) bool { return o.ID == s.SharedFrom }) {
			gone = append(gone, s)
		}
	}
	if len(gone) == 0 {
		return
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	reprogram := map[string]bool{}
	for _, s := range gone {
		g, err := c.sbs.namespaceGone(s)
		if c.Records.Sandbox(s.ID) == nil || (!g && s.SharedFrom == "") {
			continue
		}
		c.log.Warn("the sandbox's namespace is gone; releasing its endpoints", "sandbox", s.Name, "netns", s.NetNS, "err", err)
		if !s.External && err != nil {
			c.Namespaces.RemoveFiles(s.Name) // the namespace file is gone; our /etc files with it
		}
		c.Dataplane.DetachDNS(s.ID, "") // the path may lead to another namespace now
		for _, e := range c.Records.Joined(s.ID) {
			c.eps.unjoin(e)
			c.eps.remove(e)
			reprogram[e.NetworkID] = true
		}
		c.Records.DeleteSandbox(s.ID)
	}
	for id := range reprogram {
		c.Dataplane.ApplyNow(id) // a failure is retried with back-off
	}
	c.State.SaveAll()
}

// Recover, at start, pins the sandboxes a data dir of an older agent kept
// without their namespace's identity, and announces this host's joined
// endpoints again (the peers may have aged them out while it was down).
// A named sandbox is ours and pinned as it is; an adopted one only if its
// namespace still holds our interface, since its path may lead elsewhere
// by now (a PID reused): if not, it is marked so that the reaper cleans
// it up.
func (r Reaper) Recover() {
	c := r.c
	for _, s := range c.Records.Sandboxes() {
		if !s.NSID.IsZero() || s.Handoff {
			continue
		}
		id, err := c.Namespaces.Identify(s.NetNS)
		if err != nil {
			continue // the reaper judges it
		}
		if eps := c.Records.Joined(s.ID); s.External && len(eps) > 0 && !c.sbs.holdsInterface(s.NetNS, eps[0]) {
			c.log.Warn("an adopted sandbox's namespace does not hold its interface any more", "sandbox", s.Name, "netns", s.NetNS)
			id = sandbox.NSID{Dev: ^uint64(0), Ino: ^uint64(0)} // no namespace has it: reaped
		}
		c.Records.UpdateSandbox(s.ID, func(s *sandboxes.Sandbox) { s.NSID = id })
	}
	c.eps.announceAll()
}

// holdsInterface reports whether the namespace at path has the endpoint's
// interface, with its name and MAC.
func (t *sandboxSteps) holdsInterface(path string, e *sandboxes.Endpoint) bool {
	ifaces, err := t.ns.Interfaces(path)
	if err != nil {
		return false
	}
	mac := e.HardwareAddr().String()
	return slices.ContainsFunc(ifaces, func(i sandbox.Interface) bool { return i.Name == e.IfName && i.MAC.String() == mac })
}
