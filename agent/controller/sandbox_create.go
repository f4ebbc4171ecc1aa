package controller

// Creating a sandbox, and its steps: its request checked into a record and
// the networks it joins, its host ports picked, its namespace made (or
// adopted, or shared), then per network an endpoint created and joined
// (endpoints.go), and its /etc files written (sandbox_files.go).
// Sandboxes are network namespaces of this host, named (ours:
// /run/netns/NAME with /etc/netns/NAME files) or adopted (--netns PATH).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/dataplane"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/internal/ids"
	"github.com/meshnet/meshnet/agent/networks"
	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/agent/storeconn"
	"github.com/meshnet/meshnet/internal/names"
	"github.com/meshnet/meshnet/sandbox"
)

// maxHostnameLen is the longest hostname (a DNS label).
const maxHostnameLen = 63

// SandboxCreate creates a sandbox and joins it to its networks.
func (c *Controller) SandboxCreate(ctx context.Context, req api.SandboxCreate) (_ api.CreateResponse, err error) {
	defer func() { err = serviceError(c.cfg.StoreURL, err) }()
	ctx, done := c.operation(ctx)
	defer done()
	p, err := c.sbs.fromRequest(ctx, req)
	if err != nil {
		return api.CreateResponse{}, err
	}
	s := p.s
	if err := c.sbs.pickPorts(s); err != nil {
		return api.CreateResponse{}, err
	}
	var rollback undo
	defer func() { rollback.run() }()
	if err := c.sbs.makeNamespace(s, &rollback); err != nil {
		return api.CreateResponse{}, err
	}
	if err := c.Records.AddSandbox(s); err != nil {
		return api.CreateResponse{}, err
	}
	rollback.add(func() { c.Records.DeleteSandbox(s.ID) })
	for _, at := range p.attach {
		e, err := c.eps.create(ctx, at.net, at.spec, &rollback)
		if err != nil {
			return api.CreateResponse{}, err
		}
		if err := c.eps.join(s, e, at.spec.ifname, false, &rollback); err != nil {
			return api.CreateResponse{}, err
		}
	}
	if err := c.sbs.writeFiles(s.ID); err != nil {
		return api.CreateResponse{}, err
	}
	if err := c.State.SaveRecords([]string{s.ID}, nil); err != nil {
		return api.CreateResponse{}, fmt.Errorf("saving the sandbox: %w", err)
	}
	rollback = nil
	c.Dataplane.SyncDNS(s.ID)
	c.log.Info("sandbox created", "name", s.Name, "id", s.ID, "endpoints", len(p.attach))
	resp := api.CreateResponse{ID: s.ID}
	if p.discardedPorts {
		resp.Warning = "Published ports are discarded when using host network mode"
	}
	return resp, nil
}

// sandboxSteps are the steps of a sandbox's life.
type sandboxSteps struct {
	cfg        Config
	nets       *networks.Manager
	recs       *sandboxes.Table
	dp         *dataplane.Dataplane
	ns         Namespaces
	portUsable func(ports.Mapping) error
	log        *slog.Logger
}

// attachment is one network a new sandbox joins, checked.
type attachment struct {
	net  *driver.Network
	spec endpointSpec
}

// plan is a sandbox to create, checked: its record, the networks it
// joins, and whether -p was discarded (with --net host, as Docker does).
type plan struct {
	s              *sandboxes.Sandbox
	attach         []attachment
	discardedPorts bool
}

// fromRequest checks every field of req and returns the sandbox to
// create: the request's names and addresses parsed once, here.
func (t *sandboxSteps) fromRequest(ctx context.Context, req api.SandboxCreate) (plan, error) {
	for _, na := range req.Networks {
		t.nets.Know(ctx, na.Network)
	}
	name, err := sandbox.ParseName(req.Name)
	if err != nil {
		return plan{}, service.Invalidf("%v", err)
	}
	s := &sandboxes.Sandbox{ID: ids.New(), Name: name, Created: time.Now().UTC(), Hostname: req.Hostname,
		NetNS: req.NetNS, External: req.NetNS != "", ContainerID: req.ContainerID, Handoff: req.Handoff, DNSOpts: req.DNSOpts, DNSSearch: req.DNSSearch}
	if s.Hostname == "" {
		s.Hostname = req.Name
	}
	if !names.Valid(s.Hostname, maxHostnameLen) {
		return plan{}, service.Invalidf("invalid hostname %q: use letters, digits, '_', '-' and '.', at most 63 characters", s.Hostname)
	}
	if req.ContainerID != "" && !s.External {
		return plan{}, service.Invalidf("a sandbox made for a container (%s) adopts the container's namespace: give --netns", req.ContainerID)
	}
	if s.Handoff && (!s.External || !filepath.IsAbs(s.NetNS) || filepath.Clean(s.NetNS) != s.NetNS) {
		return plan{}, service.Invalidf("a sandbox whose runtime moves interfaces itself needs the absolute path of its namespace")
	}
	for _, d := range req.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return plan{}, service.Invalidf("invalid --dns %q: it is not an IP address", d)
		}
		s.DNS = append(s.DNS, d)
	}
	for _, o := range append(slices.Clone(req.DNSOpts), req.DNSSearch...) {
		if names.CheckDNS(o) != nil {
			return plan{}, service.Invalidf("invalid resolver setting %q: one word, no spaces or control characters", o)
		}
	}
	if t.recs.Named(name) != nil {
		return plan{}, service.Conflictf("sandbox %s already exists", name)
	}
	nets := req.Networks
	if len(nets) == 0 {
		def := t.nets.Default()
		if def == nil {
			return plan{}, service.Invalidf("no network given and this host has no default network")
		}
		nets = []api.NetworkAttachment{{Network: def.Name}}
	}
	p := plan{s: s}
	for _, na := range nets {
		if other, ok := strings.CutPrefix(na.Network, "container:"); ok {
			err := t.shareNamespace(s, other, req, len(nets))
			return plan{s: s}, err
		}
		at, err := t.attachment(s, na, len(nets))
		if err != nil {
			return plan{}, err
		}
		if at == nil {
			continue
		}
		if slices.ContainsFunc(p.attach, func(o attachment) bool { return o.net.ID == at.net.ID }) {
			return plan{}, service.Invalidf("network %s is given twice", at.net.Name)
		}
		p.attach = append(p.attach, *at)
	}
	mappings, err := ports.Parse(req.Publish, req.Expose, req.PublishAll)
	if err == nil {
		s.Exposed, err = ports.ExposedPorts(req.Publish, req.Expose)
	}
	if err != nil {
		return plan{}, err
	}
	if s.HostNet {
		p.discardedPorts = len(mappings) > 0
		return p, nil
	}
	for _, m := range mappings {
		if m.HostIP.Is6() {
			return plan{}, service.Invalidf("publishing on the IPv6 host address %s is not supported yet: publish on an IPv4 one or on all", m.HostIP)
		}
	}
	if len(mappings) > 0 {
		if err := t.checkPublish(p.attach); err != nil {
			return plan{}, err
		}
		s.Ports = mappings
	}
	return p, nil
}

// attachment checks one network of a new sandbox; nil for a network that
// gives it no interface (none, host).
func (t *sandboxSteps) attachment(s *sandboxes.Sandbox, na api.NetworkAttachment, count int) (*attachment, error) {
	n, err := t.nets.Table.Find(na.Network)
	if err != nil {
		return nil, err
	}
	d, ok := t.nets.Driver(n)
	if !ok {
		return nil, service.Invalidf("network %s has driver %q, which this meshagent does not have", n.Name, n.Driver)
	}
	caps := d.Capabilities()
	if caps.Exclusive && count > 1 {
		return nil, service.Invalidf("network %s cannot be combined with other networks", n.Name)
	}
	if err := d.CheckJoin(n); err != nil {
		return nil, err
	}
	if !caps.Interfaces {
		if na.IP != "" || na.IP6 != "" || len(na.Aliases) > 0 || len(na.Links) > 0 || na.MacAddress != "" || na.Interface != "" {
			return nil, service.Invalidf("network %s gives the sandbox no interface to give an address, alias or link", n.Name)
		}
		if caps.HostNamespace {
			if s.External {
				return nil, service.Invalidf("--netns and network %s both say which namespace the sandbox is: give one", n.Name)
			}
			s.HostNet = true
		}
		return nil, nil
	}
	if n.ConfigOnly {
		return nil, service.Invalidf("network %s is a config-only network: sandboxes cannot join it", n.Name)
	}
	spec, err := checkEndpoint(n, endpointRequest{ip: na.IP, ip6: na.IP6, mac: na.MacAddress, ifname: na.Interface,
		aliases: na.Aliases, links: na.Links})
	if err != nil {
		return nil, err
	}
	return &attachment{net: n, spec: spec}, nil
}

// shareNamespace makes s share the namespace of the sandbox other (Docker's
// --net container:OTHER): no networks, addresses, ports or resolver
// settings of its own.
func (t *sandboxSteps) shareNamespace(s *sandboxes.Sandbox, other string, req api.SandboxCreate, nets int) error {
	switch {
	case nets > 1:
		return service.Invalidf("--net container:%s cannot be combined with other networks", other)
	case s.External:
		return service.Invalidf("--netns and --net container:%s both say which namespace the sandbox is: give one", other)
	case len(req.Publish) > 0 || req.PublishAll:
		return service.Invalidf("conflicting options: publishing ports and --net container:%s (publish them on %s)", other, other)
	case req.Hostname != "" || len(req.DNS) > 0 || len(req.DNSOpts) > 0 || len(req.DNSSearch) > 0:
		return service.Invalidf("conflicting options: --hostname and --dns* with --net container:%s (the sandbox takes %s's)", other, other)
	}
	na := req.Networks[0]
	if na.IP != "" || na.IP6 != "" || len(na.Aliases) > 0 || len(na.Links) > 0 || na.MacAddress != "" || na.Interface != "" {
		return service.Invalidf("--net container:%s gives the sandbox no interface to give an address, alias or link", other)
	}
	o, err := t.recs.FindSandbox(other)
	if err != nil {
		return err
	}
	if o.HostNet {
		return service.Invalidf("sandbox %s is the host's namespace: use --net host", o.Name)
	}
	o = t.recs.Owner(o) // OTHER may share a namespace itself: share it with its owner
	s.SharedFrom, s.Hostname = o.ID, o.Hostname
	return nil
}

// checkPublish refuses published ports unless the network that will carry
// the sandbox's default route (where they lead) has a driver that
// publishes them.
func (t *sandboxSteps) checkPublish(nets []attachment) error {
	if !t.cfg.IPTables {
		return service.Invalidf("publishing ports needs the agent's packet filter, which iptables: false turns off")
	}
	for _, at := range nets {
		d, _ := t.nets.Driver(at.net)
		if ec, ok := d.(driver.ExternalConnectivity); !ok || !ec.DefaultRoute(at.net) {
			continue
		}
		if p, ok := d.(driver.PortPublisher); ok {
			return p.CheckPublish(at.net)
		}
		break
	}
	return service.Invalidf("publishing ports (-p, -P) needs a network with a gateway to the outside whose driver publishes ports; none of the sandbox's networks is one")
}

// pickPorts gives the sandbox's mappings their host ports: checked when
// asked for, picked from the host's ephemeral range otherwise; a port
// published by another sandbox or bound by a process is refused.
func (t *sandboxSteps) pickPorts(s *sandboxes.Sandbox) error {
	return t.pickPortsExcept(s.Ports, "")
}

// pickPortsExcept picks host ports for ms as pickPorts does, the
// mappings of the sandbox except (if not "") not counting as published.
func (t *sandboxSteps) pickPortsExcept(ms []ports.Mapping, except string) error {
	if len(ms) == 0 {
		return nil
	}
	// The agent's own ports, bound or not at this moment: VXLAN, gossip,
	// the embedded store.
	published := append(t.recs.PublishedExcept(except), ports.Mapping{Proto: "udp", HostPort: uint16(t.cfg.VXLANPort)},
		ports.Mapping{Proto: "udp", HostPort: uint16(t.cfg.GossipPort)}, ports.Mapping{Proto: "tcp", HostPort: uint16(t.cfg.GossipPort)},
		ports.Mapping{Proto: "tcp", HostPort: storeconn.EmbeddedClientPort}, ports.Mapping{Proto: "tcp", HostPort: storeconn.EmbeddedPeerPort})
	lo, hi := ephemeralRange()
	return ports.Pick(ms, published, t.portUsable, lo, hi)
}

// makeNamespace gives a new sandbox its namespace: a new one, the host's
// or another sandbox's attached under its name, or (--netns) the one
// adopted, checked; then its identity.
func (t *sandboxSteps) makeNamespace(s *sandboxes.Sandbox, rollback *undo) error {
	switch {
	case s.External:
		// checked below, with its identity
	case s.SharesNamespace():
		target := hostNetNS
		if s.SharedFrom != "" {
			target = t.recs.Sandbox(s.SharedFrom).NetNS
		}
		path, err := t.ns.Attach(s.Name, target)
		if errors.Is(err, sandbox.ErrExists) {
			return service.Conflictf("a network namespace named %s already exists on this host", s.Name)
		}
		if err != nil {
			return fmt.Errorf("attaching the sandbox to %s: %w", target, err)
		}
		s.NetNS = path
		rollback.add(func() { t.ns.Remove(s.Name) })
	default:
		path, err := t.ns.Create(s.Name)
		if errors.Is(err, sandbox.ErrExists) {
			return service.Conflictf("a network namespace named %s already exists on this host", s.Name)
		}
		if err != nil {
			return fmt.Errorf("creating the sandbox's namespace: %w", err)
		}
		s.NetNS = path
		rollback.add(func() { t.ns.Remove(s.Name) })
	}
	if s.Handoff {
		return nil // the runtime's namespace, perhaps not made yet
	}
	var err error
	if s.NSID, err = t.ns.Identify(s.NetNS); err != nil {
		if s.External {
			return service.Invalidf("--netns %s: %v", s.NetNS, err)
		}
		return err
	}
	if !s.External {
		return nil
	}
	if host, err := t.ns.Identify(hostNetNS); err == nil && s.NSID == host {
		return service.Invalidf("network namespace %s is the host's own: a sandbox needs its own", s.NetNS)
	}
	for _, o := range t.recs.Sandboxes() {
		if o.NSID == s.NSID && !o.SharesNamespace() {
			return service.Conflictf("network namespace %s is already sandbox %s", s.NetNS, o.Name)
		}
	}
	return nil
}
