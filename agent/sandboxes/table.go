package sandboxes

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/meshnet/meshnet/agent/internal/ids"
	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/sandbox"
)

// Table holds this host's sandboxes and endpoints. Its methods are safe
// for concurrent use; the records it returns must not be changed (see the
// package comment).
type Table struct {
	mu        sync.Mutex // guards the maps below; a leaf lock
	sandboxes map[string]*Sandbox
	endpoints map[string]*Endpoint
	byNetwork map[string]map[string]*Endpoint // endpoints by network, then id
}

// NewTable returns a table holding the records given (from the data dir).
func NewTable(sbs []*Sandbox, eps []*Endpoint) *Table {
	t := &Table{sandboxes: map[string]*Sandbox{}, endpoints: map[string]*Endpoint{}, byNetwork: map[string]map[string]*Endpoint{}}
	for _, s := range sbs {
		t.sandboxes[s.ID] = s
	}
	for _, e := range eps {
		t.putEndpointLocked(e)
	}
	return t
}

// Sandbox returns the sandbox with the id, or nil.
func (t *Table) Sandbox(id string) *Sandbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sandboxes[id]
}

// Endpoint returns the endpoint with the id, or nil.
func (t *Table) Endpoint(id string) *Endpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.endpoints[id]
}

// FindSandbox looks a sandbox up by id, name or unique id prefix.
func (t *Table) FindSandbox(ref string) (*Sandbox, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return ids.Find(t.sandboxes, ref, "sandbox", func(s *Sandbox) string { return s.Name.String() })
}

// FindEndpoint looks an endpoint up by id or unique id prefix.
func (t *Table) FindEndpoint(ref string) (*Endpoint, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return ids.Find(t.endpoints, ref, "endpoint", nil)
}

// Sandboxes lists every sandbox, by name.
func (t *Table) Sandboxes() []*Sandbox {
	t.mu.Lock()
	out := make([]*Sandbox, 0, len(t.sandboxes))
	for _, s := range t.sandboxes {
		out = append(out, s)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(x, y *Sandbox) int { return strings.Compare(x.Name.String(), y.Name.String()) })
	return out
}

// Endpoints lists every endpoint, by id.
func (t *Table) Endpoints() []*Endpoint {
	t.mu.Lock()
	out := make([]*Endpoint, 0, len(t.endpoints))
	for _, e := range t.endpoints {
		out = append(out, e)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(x, y *Endpoint) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// Counts returns how many sandboxes and endpoints there are.
func (t *Table) Counts() (sandboxes, endpoints int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sandboxes), len(t.endpoints)
}

// OnNetwork lists a network's endpoints here, by id; at most limit of
// them, in no order, for a limit of 0 or more.
func (t *Table) OnNetwork(networkID string, limit int) []*Endpoint {
	t.mu.Lock()
	m := t.byNetwork[networkID]
	n := len(m)
	if limit >= 0 {
		n = min(n, limit)
	}
	out := make([]*Endpoint, 0, n)
	for _, e := range m {
		if len(out) == n {
			break
		}
		out = append(out, e)
	}
	t.mu.Unlock()
	if limit < 0 {
		slices.SortFunc(out, func(x, y *Endpoint) int { return strings.Compare(x.ID, y.ID) })
	}
	return out
}

// Joined returns the sandbox's endpoints in join order.
func (t *Table) Joined(sandboxID string) []*Endpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.joinedLocked(sandboxID)
}

func (t *Table) joinedLocked(sandboxID string) []*Endpoint {
	s := t.sandboxes[sandboxID]
	if s == nil {
		return nil
	}
	out := make([]*Endpoint, 0, len(s.Endpoints))
	for _, id := range s.Endpoints {
		if e := t.endpoints[id]; e != nil {
			out = append(out, e)
		}
	}
	return out
}

// EndpointIn returns the sandbox's endpoint on a network, if any.
func (t *Table) EndpointIn(sandboxID, networkID string) *Endpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.endpointInLocked(sandboxID, networkID)
}

func (t *Table) endpointInLocked(sandboxID, networkID string) *Endpoint {
	for _, e := range t.joinedLocked(sandboxID) {
		if e.NetworkID == networkID {
			return e
		}
	}
	return nil
}

// Owner is the sandbox whose namespace s uses: the one it shares, or s.
func (t *Table) Owner(s *Sandbox) *Sandbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o := t.sandboxes[s.SharedFrom]; o != nil {
		return o
	}
	return s
}

// Sharers lists the sandboxes that share the namespace of the sandbox id.
func (t *Table) Sharers(id string) []*Sandbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*Sandbox
	for _, s := range t.sandboxes {
		if s.SharedFrom == id {
			out = append(out, s)
		}
	}
	return out
}

// Named returns the sandbox with the name, or nil.
func (t *Table) Named(name sandbox.Name) *Sandbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sandboxes {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ByContainer returns the sandbox made for a container, or nil.
func (t *Table) ByContainer(containerID string) *Sandbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sandboxes {
		if s.ContainerID == containerID {
			return s
		}
	}
	return nil
}

// LinkTarget is the endpoint on a network of the sandbox a link names.
func (t *Table) LinkTarget(name, networkID string) (*Endpoint, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sandboxes {
		if s.Name.String() != name {
			continue
		}
		if e := t.endpointInLocked(s.ID, networkID); e != nil {
			return e, nil
		}
		return nil, service.Invalidf("cannot link to %s: it is not on the same network on this host", name)
	}
	return nil, service.NotFoundf("cannot link to %s: no such sandbox on this host", name)
}

// Published lists every sandbox's published ports.
func (t *Table) Published() []ports.Mapping { return t.PublishedExcept("") }

// PublishedExcept is Published without the mappings of the sandbox
// except.
func (t *Table) PublishedExcept(except string) []ports.Mapping {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ports.Mapping
	for id, s := range t.sandboxes {
		if id != except {
			out = append(out, s.Ports...)
		}
	}
	return out
}

// AddSandbox records a new sandbox; its name must be free.
func (t *Table) AddSandbox(s *Sandbox) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range t.sandboxes {
		if o.Name == s.Name {
			return service.Conflictf("sandbox %s already exists", s.Name)
		}
	}
	t.sandboxes[s.ID] = s
	return nil
}

// UpdateSandbox replaces the sandbox with a changed copy: change gets the
// copy. It returns the new record, or nil if there is no such sandbox.
func (t *Table) UpdateSandbox(id string, change func(*Sandbox)) *Sandbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sandboxes[id]
	if s == nil {
		return nil
	}
	s = s.clone()
	change(s)
	t.sandboxes[id] = s
	return s
}

// DeleteSandbox forgets a sandbox (not its endpoints).
func (t *Table) DeleteSandbox(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sandboxes, id)
}

// AddEndpoint records a new endpoint, joined to nothing.
func (t *Table) AddEndpoint(e *Endpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.putEndpointLocked(e)
}

// UpdateEndpoint replaces an endpoint that is joined to nothing with a
// changed copy; it returns the new record (nil if there is no such
// endpoint).
func (t *Table) UpdateEndpoint(id string, change func(*Endpoint)) *Endpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.endpoints[id]
	if e == nil {
		return nil
	}
	e = e.clone()
	change(e)
	t.putEndpointLocked(e)
	return e
}

// DeleteEndpoint forgets an endpoint, and takes it out of its sandbox.
func (t *Table) DeleteEndpoint(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.endpoints[id]
	if e == nil {
		return
	}
	t.unjoinLocked(e)
	delete(t.endpoints, id)
	if m := t.byNetwork[e.NetworkID]; m != nil {
		if delete(m, id); len(m) == 0 {
			delete(t.byNetwork, e.NetworkID)
		}
	}
}

func (t *Table) putEndpointLocked(e *Endpoint) {
	t.endpoints[e.ID] = e
	m := t.byNetwork[e.NetworkID]
	if m == nil {
		m = map[string]*Endpoint{}
		t.byNetwork[e.NetworkID] = m
	}
	m[e.ID] = e
}

// Join puts an endpoint into a sandbox as interface ifname ("" for the
// first free ethN), handed off to the runtime or not, and returns the
// endpoint's new record. It refuses an endpoint joined already, a second
// endpoint on one network, and an interface name taken.
func (t *Table) Join(endpointID, sandboxID, ifname string, handoff bool) (*Endpoint, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, s := t.endpoints[endpointID], t.sandboxes[sandboxID]
	switch {
	case e == nil:
		return nil, service.NotFoundf("endpoint %s not found", endpointID)
	case s == nil:
		return nil, service.NotFoundf("sandbox %s not found", sandboxID)
	case e.Joined():
		return nil, service.Conflictf("endpoint %s is already joined to a sandbox", e.ID[:12])
	case t.endpointInLocked(s.ID, e.NetworkID) != nil:
		return nil, service.Conflictf("sandbox %s is already connected to network %s", s.Name, e.NetworkID)
	}
	taken := func(name string) bool {
		return slices.ContainsFunc(t.joinedLocked(s.ID), func(o *Endpoint) bool { return o.IfName == name })
	}
	if ifname == "" {
		for i := 0; ; i++ {
			if ifname = "eth" + strconv.Itoa(i); !taken(ifname) {
				break
			}
		}
	} else if taken(ifname) {
		return nil, service.Conflictf("sandbox %s already has an interface %s", s.Name, ifname)
	}
	e = e.clone()
	e.SandboxID, e.IfName, e.Handoff = s.ID, ifname, handoff
	t.putEndpointLocked(e)
	s = s.clone()
	s.Endpoints = append(s.Endpoints, e.ID)
	t.sandboxes[s.ID] = s
	return e, nil
}

// Leave takes an endpoint out of its sandbox and returns the sandbox it
// was in (nil if none).
func (t *Table) Leave(endpointID string) *Sandbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.endpoints[endpointID]
	if e == nil {
		return nil
	}
	return t.unjoinLocked(e)
}

func (t *Table) unjoinLocked(e *Endpoint) *Sandbox {
	if !e.Joined() {
		return nil
	}
	s := t.sandboxes[e.SandboxID]
	if s != nil {
		c := s.clone()
		c.Endpoints = slices.DeleteFunc(c.Endpoints, func(id string) bool { return id == e.ID })
		t.sandboxes[s.ID] = c
	}
	e = e.clone()
	e.SandboxID, e.IfName, e.Handoff = "", "", false
	t.putEndpointLocked(e)
	return s
}
