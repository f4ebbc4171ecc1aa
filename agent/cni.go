package agent

// CNI attachments: the CNI plugin (cmd/meshnet-cni) asks the agent to put
// a namespace another runtime made on a network. The container gets one
// sandbox (External, ContainerID set) whatever the number of its
// networks; each attachment is one of its endpoints, keyed by the
// interface name. The sandbox goes when its last attachment does, or
// when its namespace does (the reaper: a runtime that crashed before
// DEL).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/sandbox"
)

// checkCNIKey validates a container id (CNI: letters, digits, '_', '.',
// '-', starting with a letter or digit) and an interface name.
func checkCNIKey(k api.CNIAttachment) error {
	if k.ContainerID == "" {
		return badRequest("no container id given")
	}
	if len(k.ContainerID) > 1024 || !isAlnum(k.ContainerID[0]) || strings.IndexFunc(k.ContainerID, func(r rune) bool {
		return !(r < 128 && isAlnum(byte(r))) && r != '_' && r != '.' && r != '-'
	}) >= 0 {
		return badRequest("invalid container id %q: use letters, digits, '_', '.' and '-'", k.ContainerID)
	}
	return checkIfName(k.IfName)
}

func checkIfName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n%") {
		return badRequest("invalid interface name %q: 1 to 15 characters, no '/', ':', '%%' or spaces", name)
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// cniSandbox is the sandbox of a container, if it has one. The caller
// holds mu.
func (a *Agent) cniSandbox(containerID string) *sandboxRecord {
	for _, s := range a.sandboxes {
		if s.ContainerID == containerID {
			return s
		}
	}
	return nil
}

// cniAttachment is the container's endpoint with that interface name.
// The caller holds mu.
func (a *Agent) cniAttachment(k api.CNIAttachment) (*sandboxRecord, *endpointRecord) {
	s := a.cniSandbox(k.ContainerID)
	if s == nil {
		return nil, nil
	}
	for _, e := range a.sandboxEndpoints(s) {
		if e.IfName == k.IfName {
			return s, e
		}
	}
	return s, nil
}

// cniSandboxName picks a free sandbox name for a container: its name
// when the runtime gave one, else its short id, else its id, else a hash
// of it. The caller holds mu.
func (a *Agent) cniSandboxName(containerID, name string) string {
	short := containerID
	if len(short) > 12 {
		short = short[:12]
	}
	sum := sha256.Sum256([]byte(containerID))
	for _, c := range []string{name, short, containerID, "cni-" + hex.EncodeToString(sum[:])[:20]} {
		if c == "" || sandbox.ValidName(c) != nil || len(c) > 63 {
			continue
		}
		if !slices.ContainsFunc(a.sortedSandboxes(), func(o *sandboxRecord) bool { return o.Name == c }) {
			return c
		}
	}
	return "cni-" + newID()[:20]
}

// sortedSandboxes lists the sandboxes. The caller holds mu.
func (a *Agent) sortedSandboxes() []*sandboxRecord {
	out := make([]*sandboxRecord, 0, len(a.sandboxes))
	for _, s := range a.sandboxes {
		out = append(out, s)
	}
	return out
}

// cniPorts turns the portMappings capability into the sandbox's mappings.
func cniPorts(pm []api.CNIPortMapping) ([]ports.Mapping, error) {
	var out []ports.Mapping
	for _, p := range pm {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, badRequest("invalid port mapping protocol %q: tcp or udp", p.Protocol)
		}
		if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return nil, badRequest("invalid port mapping %d:%d/%s: ports are 1 to 65535", p.HostPort, p.ContainerPort, proto)
		}
		m := ports.Mapping{Proto: proto, HostPort: uint16(p.HostPort), Port: uint16(p.ContainerPort)}
		if p.HostIP != "" {
			ip, err := netip.ParseAddr(p.HostIP)
			switch {
			case err != nil:
				return nil, badRequest("invalid port mapping host address %q", p.HostIP)
			case ip.Is6() && !ip.IsUnspecified():
				return nil, badRequest("publishing on the IPv6 host address %s is not supported yet: publish on an IPv4 one or on all", ip)
			case !ip.IsUnspecified():
				m.HostIP = ip
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// CNIAdd attaches a container's namespace to a network: a sandbox for the
// container (the first time), an endpoint keyed by the interface name.
func (a *Agent) CNIAdd(ctx context.Context, req api.CNIAdd) (_ api.CNIResult, err error) {
	defer func() { err = a.serviceError(err) }()
	if err := checkCNIKey(req.CNIAttachment); err != nil {
		return api.CNIResult{}, err
	}
	if !filepath.IsAbs(req.NetNS) {
		return api.CNIResult{}, badRequest("invalid network namespace %q: an absolute path is needed", req.NetNS)
	}
	var mac net.HardwareAddr
	if req.MAC != "" {
		if mac, err = net.ParseMAC(req.MAC); err != nil || len(mac) != 6 || mac[0]&1 != 0 || slices.Equal(mac, make(net.HardwareAddr, 6)) {
			return api.CNIResult{}, badRequest("invalid MAC address %q: a unicast Ethernet address is needed", req.MAC)
		}
	}
	mappings, err := cniPorts(req.Ports)
	if err != nil {
		return api.CNIResult{}, err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a.knowNetworks(ctx, req.Network)
	n, err := a.lookupNetwork(req.Network)
	if err != nil {
		return api.CNIResult{}, err
	}
	spec, err := checkEndpointSpec(n, req.Name, req.IP, req.IP6, req.Aliases, nil)
	if err != nil {
		return api.CNIResult{}, err
	}
	nsid, err := sandbox.Identify(req.NetNS)
	if err != nil {
		return api.CNIResult{}, badRequest("network namespace %s: %v", req.NetNS, err)
	}
	if host, err := sandbox.Identify(hostNetNS); err == nil && nsid == host {
		return api.CNIResult{}, badRequest("network namespace %s is the host's own: a container needs its own", req.NetNS)
	}
	a.mu.Lock()
	s, e := a.cniAttachment(req.CNIAttachment)
	switch {
	case e != nil:
		a.mu.Unlock()
		return api.CNIResult{}, conflict("container %s already has an interface %s: DEL it first", req.ContainerID, req.IfName)
	case s != nil && s.NSID != nsid:
		a.mu.Unlock()
		return api.CNIResult{}, conflict("container %s is attached in another network namespace (%s)", req.ContainerID, s.NetNS)
	}
	for _, o := range a.sandboxes {
		if o.ContainerID != req.ContainerID && o.NSID == nsid && !o.HostNet && o.SharedFrom == "" {
			a.mu.Unlock()
			return api.CNIResult{}, conflict("network namespace %s is already sandbox %s", req.NetNS, o.Name)
		}
	}
	a.mu.Unlock()

	var rollback undo
	defer func() { rollback.run() }()
	if s == nil {
		s = &sandboxRecord{ID: newID(), Created: time.Now().UTC(), NetNS: req.NetNS, NSID: nsid,
			External: true, ContainerID: req.ContainerID}
		a.mu.Lock()
		s.Name = a.cniSandboxName(req.ContainerID, req.Name)
		s.Hostname = s.Name
		a.mu.Unlock()
		if len(mappings) > 0 {
			if err := a.checkPublish([]attachment{{net: n}}); err != nil {
				return api.CNIResult{}, err
			}
			s.Ports = mappings
			if err := a.pickPorts(s); err != nil {
				return api.CNIResult{}, err
			}
		}
		a.recordSandbox(s, &rollback)
	}
	spec.name = "" // the sandbox's name is what peers call it
	e, err = a.createEndpoint(ctx, n, spec, &rollback)
	if err != nil {
		return api.CNIResult{}, err
	}
	if mac != nil {
		e.MAC = mac.String()
	}
	if err := a.joinEndpoint(s, e, req.IfName, &rollback); err != nil {
		return api.CNIResult{}, err
	}
	if err := a.saveRecords([]*sandboxRecord{s}, []*endpointRecord{e}); err != nil {
		return api.CNIResult{}, fmt.Errorf("saving the attachment: %w", err)
	}
	rollback = nil
	a.syncDNS(s)
	a.log.Info("CNI attachment added", "container", req.ContainerID, "ifname", req.IfName, "network", n.Name,
		"sandbox", s.Name, "addr", e.Addr)
	return a.cniResult(s, e), nil
}

// cniResult describes an attachment.
func (a *Agent) cniResult(s *sandboxRecord, e *endpointRecord) api.CNIResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := api.CNIResult{Interface: e.IfName, MacAddress: e.mac().String(), NetNS: s.NetNS,
		IPv4Address: e.Addr.String(), IPv6Address: prefixString(e.Addr6), DefaultRoute: a.defaultRoute(s) == e}
	if n := a.networks[e.NetworkID]; n != nil {
		if g := n.Gateway(true); g.IsValid() {
			r.Gateway = g.Addr().String()
		}
		if g := n.Gateway(false); g.IsValid() {
			r.IPv6Gateway = g.Addr().String()
		}
		r.MTU = a.networkMTU(n)
	}
	r.DNS.Nameservers, r.DNS.Search, r.DNS.Options = a.dnsSettings(s)
	return r
}

// CNICheck verifies an attachment: the agent has it, on that network, in
// that namespace, and the namespace holds its interface with its MAC and
// addresses.
func (a *Agent) CNICheck(ctx context.Context, req api.CNICheck) (_ api.CNIResult, err error) {
	defer func() { err = a.serviceError(err) }()
	if err := checkCNIKey(req.CNIAttachment); err != nil {
		return api.CNIResult{}, err
	}
	a.knowNetworks(ctx, req.Network)
	n, err := a.lookupNetwork(req.Network)
	if err != nil {
		return api.CNIResult{}, err
	}
	a.mu.Lock()
	s, e := a.cniAttachment(req.CNIAttachment)
	a.mu.Unlock()
	if e == nil || e.NetworkID != n.ID {
		return api.CNIResult{}, notFound("container %s has no interface %s on network %s", req.ContainerID, req.IfName, n.Name)
	}
	if id, err := sandbox.Identify(req.NetNS); err != nil || id != s.NSID {
		return api.CNIResult{}, conflict("container %s's interface %s is in another network namespace than %s", req.ContainerID, req.IfName, req.NetNS)
	}
	ifaces, err := sandbox.Interfaces(s.NetNS)
	if err != nil {
		return api.CNIResult{}, fmt.Errorf("reading the interfaces of %s: %w", s.NetNS, err)
	}
	i := slices.IndexFunc(ifaces, func(i sandbox.Interface) bool { return i.Name == e.IfName })
	switch {
	case i < 0:
		return api.CNIResult{}, conflict("the namespace of container %s has no interface %s", req.ContainerID, req.IfName)
	case !slices.Equal(ifaces[i].MAC, e.mac()):
		return api.CNIResult{}, conflict("interface %s of container %s has MAC %s, want %s", req.IfName, req.ContainerID, ifaces[i].MAC, e.mac())
	case !ifaces[i].Up:
		return api.CNIResult{}, conflict("interface %s of container %s is down", req.IfName, req.ContainerID)
	}
	for _, p := range []netip.Prefix{e.Addr, e.Addr6} {
		if p.IsValid() && !slices.Contains(ifaces[i].Addrs, p) {
			return api.CNIResult{}, conflict("interface %s of container %s lacks its address %s", req.IfName, req.ContainerID, p)
		}
	}
	return a.cniResult(s, e), nil
}

// CNIDel releases an attachment: the interface leaves the namespace (if
// it is still there), the addresses go back to the pool, and the
// container's sandbox goes with its last attachment. Nothing attached (or
// attached on another network) is not an error; nor is a store that is
// down (the orphan sweep gives the leases back later).
func (a *Agent) CNIDel(ctx context.Context, req api.CNIDel) (err error) {
	defer func() { err = a.serviceError(err) }()
	if err := checkCNIKey(req.CNIAttachment); err != nil {
		return err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	s, e := a.cniAttachment(req.CNIAttachment)
	var n *driver.Network
	if e != nil {
		n = a.networks[e.NetworkID]
	}
	a.mu.Unlock()
	if e == nil {
		return nil
	}
	if n != nil && req.Network != "" && n.Name != req.Network && n.ID != req.Network {
		return nil // another network's interface of that name: not ours to remove
	}
	return a.releaseCNI(s, e)
}

// releaseCNI takes an attachment away and, with its last one, the
// container's sandbox. The caller holds opMu.
func (a *Agent) releaseCNI(s *sandboxRecord, e *endpointRecord) error {
	a.leaveEndpoint(e)
	a.deleteEndpoint(e)
	a.mu.Lock()
	last := len(a.sandboxEndpoints(s)) == 0
	a.mu.Unlock()
	a.log.Info("CNI attachment deleted", "container", s.ContainerID, "ifname", e.IfName, "sandbox", s.Name)
	if last {
		return a.dropSandbox(s, false)
	}
	a.syncDNS(s)
	return a.saveRecords([]*sandboxRecord{s}, []*endpointRecord{e})
}

// CNIGC releases the network's CNI attachments on this host that the
// runtime no longer knows.
func (a *Agent) CNIGC(ctx context.Context, req api.CNIGC) (_ api.CNIGCResult, err error) {
	defer func() { err = a.serviceError(err) }()
	valid := map[api.CNIAttachment]bool{}
	for _, k := range req.Valid {
		valid[k] = true
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.knowNetworks(ctx, req.Network)
	n, err := a.lookupNetwork(req.Network)
	if errors.Is(err, service.ErrNotFound) {
		return api.CNIGCResult{}, nil // nothing of it here
	}
	if err != nil {
		return api.CNIGCResult{}, err
	}
	type gone struct {
		s *sandboxRecord
		e *endpointRecord
	}
	var release []gone
	a.mu.Lock()
	for _, s := range a.sandboxes {
		if s.ContainerID == "" {
			continue
		}
		for _, e := range a.sandboxEndpoints(s) {
			if e.NetworkID == n.ID && !valid[api.CNIAttachment{ContainerID: s.ContainerID, IfName: e.IfName}] {
				release = append(release, gone{s, e})
			}
		}
	}
	a.mu.Unlock()
	var res api.CNIGCResult
	var errs []error
	for _, g := range release {
		res.Released = append(res.Released, api.CNIAttachment{ContainerID: g.s.ContainerID, IfName: g.e.IfName})
		errs = append(errs, a.releaseCNI(g.s, g.e))
	}
	slices.SortFunc(res.Released, func(x, y api.CNIAttachment) int {
		return strings.Compare(x.ContainerID+"/"+x.IfName, y.ContainerID+"/"+y.IfName)
	})
	return res, errors.Join(errs...)
}

// CNIStatus says why an ADD on the network would fail now: the network
// is unknown, or it is global and the cluster store cannot be reached.
func (a *Agent) CNIStatus(ctx context.Context, network string) (err error) {
	defer func() { err = a.serviceError(err) }()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a.knowNetworks(ctx, network)
	n, err := a.lookupNetwork(network)
	if err != nil {
		return err
	}
	if _, err := a.checkJoinable(n); err != nil {
		return err
	}
	if n.Global() {
		if _, err := a.netStore(ctx); err != nil {
			return err
		}
	}
	return nil
}
