// Package cniserver is the agent's side of the CNI plugin (cmd/meshnet-cni):
// it turns a runtime's attachments into the service's operations. A
// container gets one sandbox — the namespace the runtime made, adopted
// (service.SandboxCreate with its NetNS and ContainerID) — whatever the
// number of its networks; each attachment, keyed by (container id,
// interface name), is one of its endpoints: the first ADD creates the
// sandbox with it, later ones connect the sandbox to one more network,
// DEL disconnects it, and the sandbox goes with its last attachment (or
// when its namespace goes: the agent's reaper, for a runtime that crashed
// before DEL).
//
// The server is an adapter: it depends on agent/service and agent/api
// only, validates what the plugin sends, and keeps no state the core
// needs. Its lock serialises attachments, so that two ADDs of one
// container never make two sandboxes.
package cniserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/internal/names"
)

// Server serves CNI requests over a service.
type Server struct {
	svc service.Service
	mu  sync.Mutex // serialises ADD, DEL and GC
}

// New returns a CNI server over svc.
func New(svc service.Service) *Server { return &Server{svc: svc} }

// Add attaches a container's namespace to a network as an interface.
func (s *Server) Add(ctx context.Context, req api.CNIAdd) (api.CNIResult, error) {
	if err := checkKey(req.CNIAttachment); err != nil {
		return api.CNIResult{}, err
	}
	if !filepath.IsAbs(req.NetNS) {
		return api.CNIResult{}, service.Invalidf("invalid network namespace %q: an absolute path is needed", req.NetNS)
	}
	publish, err := publishSpecs(req.Ports)
	if err != nil {
		return api.CNIResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.sandboxOf(ctx, req.ContainerID)
	if err != nil {
		return api.CNIResult{}, err
	}
	at := api.NetworkAttachment{Network: req.Network, IP: req.IP, IP6: req.IP6, Aliases: req.Aliases,
		MacAddress: req.MAC, Interface: req.IfName}
	switch {
	case sb == nil:
		if err := s.create(ctx, req, at, publish); err != nil {
			return api.CNIResult{}, err
		}
	case attachment(sb, req.IfName) != nil:
		return api.CNIResult{}, service.Conflictf("container %s already has an interface %s: DEL it first", req.ContainerID, req.IfName)
	case filepath.Clean(sb.NetNS) != filepath.Clean(req.NetNS):
		return api.CNIResult{}, service.Conflictf("container %s is attached in another network namespace (%s)", req.ContainerID, sb.NetNS)
	default:
		err := s.svc.NetworkConnect(ctx, req.Network, api.NetworkConnect{Container: sb.ID, EndpointConfig: &api.EndpointRequest{
			IPAMConfig: &api.EndpointIPAMConfig{IPv4Address: req.IP, IPv6Address: req.IP6},
			Aliases:    req.Aliases, MacAddress: req.MAC, Interface: req.IfName}})
		if err != nil {
			return api.CNIResult{}, err
		}
	}
	return s.result(ctx, req.CNIAttachment)
}

// create makes the container's sandbox with its first attachment, under a
// name of its own: the runtime's name for it, else its short id, else its
// id, else a hash of it (the first free one).
func (s *Server) create(ctx context.Context, req api.CNIAdd, at api.NetworkAttachment, publish []string) error {
	sum := sha256.Sum256([]byte(req.ContainerID))
	short := req.ContainerID[:min(12, len(req.ContainerID))]
	var err error
	for _, name := range slices.Compact([]string{req.Name, short, req.ContainerID, "cni-" + hex.EncodeToString(sum[:])[:20]}) {
		if name == "" || !names.Valid(name, 63) {
			continue
		}
		_, err = s.svc.SandboxCreate(ctx, api.SandboxCreate{Name: name, NetNS: req.NetNS, ContainerID: req.ContainerID,
			Networks: []api.NetworkAttachment{at}, Publish: publish})
		if !errors.Is(err, service.ErrConflict) || !strings.Contains(err.Error(), "sandbox "+name+" already exists") {
			return err
		}
	}
	return err
}

// sandboxOf returns the container's sandbox, if it has one.
func (s *Server) sandboxOf(ctx context.Context, containerID string) (*api.Sandbox, error) {
	sbs, err := s.svc.SandboxList(ctx, map[string][]string{"container-id": {containerID}})
	if err != nil || len(sbs) == 0 {
		return nil, err
	}
	return &sbs[0], nil
}

// attachment is the sandbox's endpoint with the interface name, if any.
func attachment(sb *api.Sandbox, ifname string) *api.EndpointSettings {
	for _, es := range sb.Networks {
		if es.Interface == ifname {
			return &es
		}
	}
	return nil
}

// result describes an attachment.
func (s *Server) result(ctx context.Context, k api.CNIAttachment) (api.CNIResult, error) {
	sb, err := s.sandboxOf(ctx, k.ContainerID)
	if err != nil {
		return api.CNIResult{}, err
	}
	var es *api.EndpointSettings
	if sb != nil {
		es = attachment(sb, k.IfName)
	}
	if es == nil {
		return api.CNIResult{}, fmt.Errorf("the attachment of container %s as %s is gone", k.ContainerID, k.IfName)
	}
	r := api.CNIResult{Interface: es.Interface, MacAddress: es.MacAddress, NetNS: sb.NetNS,
		IPv4Address: es.IPAddress + "/" + strconv.Itoa(es.IPPrefixLen), Gateway: es.Gateway, IPv6Gateway: es.IPv6Gateway,
		DefaultRoute: es.DefaultRoute, MTU: es.MTU, DNS: sb.Resolver}
	if es.IPv6Address != "" {
		r.IPv6Address = es.IPv6Address + "/" + strconv.Itoa(es.IPv6Prefix)
	}
	return r, nil
}

// Check verifies an attachment: the agent has it, on that network, in
// that namespace, and the namespace holds its interface with its MAC and
// addresses.
func (s *Server) Check(ctx context.Context, req api.CNICheck) (api.CNIResult, error) {
	if err := checkKey(req.CNIAttachment); err != nil {
		return api.CNIResult{}, err
	}
	n, err := s.svc.NetworkInspect(ctx, req.Network)
	if err != nil {
		return api.CNIResult{}, err
	}
	sb, err := s.sandboxOf(ctx, req.ContainerID)
	if err != nil {
		return api.CNIResult{}, err
	}
	var es *api.EndpointSettings
	if sb != nil {
		es = attachment(sb, req.IfName)
	}
	if es == nil || es.NetworkID != n.ID {
		return api.CNIResult{}, service.NotFoundf("container %s has no interface %s on network %s", req.ContainerID, req.IfName, n.Name)
	}
	if err := s.svc.EndpointCheck(ctx, es.EndpointID, api.EndpointCheck{NetNS: req.NetNS}); err != nil {
		return api.CNIResult{}, err
	}
	return s.result(ctx, req.CNIAttachment)
}

// Del releases an attachment: the interface leaves the namespace (if it
// is still there), the addresses go back to the pool, and the container's
// sandbox goes with its last attachment. Nothing attached (or attached on
// another network) is not an error; nor is a store that is down (the
// orphan sweep gives the leases back later).
func (s *Server) Del(ctx context.Context, req api.CNIDel) error {
	if err := checkKey(req.CNIAttachment); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.sandboxOf(ctx, req.ContainerID)
	if err != nil || sb == nil {
		return err
	}
	network, es := "", (*api.EndpointSettings)(nil)
	for name, e := range sb.Networks {
		if e.Interface == req.IfName {
			network, es = name, &e
		}
	}
	if es == nil || (req.Network != "" && req.Network != network && req.Network != es.NetworkID) {
		return nil // another network's interface of that name: not ours to remove
	}
	return s.release(ctx, sb, es.NetworkID)
}

// release takes one attachment of a container away and, with its last
// one, the container's sandbox (not its namespace: the runtime's).
func (s *Server) release(ctx context.Context, sb *api.Sandbox, networkID string) error {
	var err error
	if len(sb.Networks) <= 1 {
		err = s.svc.SandboxRemove(ctx, sb.ID, true)
	} else {
		err = s.svc.NetworkDisconnect(ctx, networkID, api.NetworkDisconnect{Container: sb.ID, Force: true})
	}
	if errors.Is(err, service.ErrNotFound) {
		return nil // gone meanwhile (the reaper)
	}
	return err
}

// GC releases the network's CNI attachments on this host that the runtime
// no longer knows.
func (s *Server) GC(ctx context.Context, req api.CNIGC) (api.CNIGCResult, error) {
	valid := map[api.CNIAttachment]bool{}
	for _, k := range req.Valid {
		valid[k] = true
	}
	res := api.CNIGCResult{Released: []api.CNIAttachment{}}
	n, err := s.svc.NetworkInspect(ctx, req.Network)
	if errors.Is(err, service.ErrNotFound) {
		return res, nil // nothing of it here
	}
	if err != nil {
		return res, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sbs, err := s.svc.SandboxList(ctx, map[string][]string{"network": {n.ID}})
	if err != nil {
		return res, err
	}
	var errs []error
	for _, sb := range sbs {
		if sb.ContainerID == "" {
			continue
		}
		for _, es := range sb.Networks {
			k := api.CNIAttachment{ContainerID: sb.ContainerID, IfName: es.Interface}
			if es.NetworkID == n.ID && !valid[k] {
				res.Released = append(res.Released, k)
				errs = append(errs, s.release(ctx, &sb, n.ID))
			}
		}
	}
	slices.SortFunc(res.Released, func(x, y api.CNIAttachment) int {
		return strings.Compare(x.ContainerID+"/"+x.IfName, y.ContainerID+"/"+y.IfName)
	})
	return res, errors.Join(errs...)
}

// Status says why an ADD on the network would fail now.
func (s *Server) Status(ctx context.Context, network string) error {
	return s.svc.NetworkReady(ctx, network)
}

// checkKey validates a container id (CNI: letters, digits, '_', '.', '-',
// starting with a letter or digit) and an interface name.
func checkKey(k api.CNIAttachment) error {
	switch {
	case k.ContainerID == "":
		return service.Invalidf("no container id given")
	case !names.Valid(k.ContainerID, 1024):
		return service.Invalidf("invalid container id %q: use letters, digits, '_', '.' and '-'", k.ContainerID)
	case k.IfName == "" || len(k.IfName) > 15 || k.IfName == "." || k.IfName == ".." || strings.ContainsAny(k.IfName, "/: \t\n%"):
		return service.Invalidf("invalid interface name %q: 1 to 15 characters, no '/', ':', '%%' or spaces", k.IfName)
	}
	return nil
}

// publishSpecs turns the portMappings capability into published ports,
// [HOSTIP:]HOSTPORT:PORT/PROTO.
func publishSpecs(pm []api.CNIPortMapping) ([]string, error) {
	var out []string
	for _, p := range pm {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			return nil, service.Invalidf("invalid port mapping protocol %q: tcp or udp", p.Protocol)
		}
		if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return nil, service.Invalidf("invalid port mapping %d:%d/%s: ports are 1 to 65535", p.HostPort, p.ContainerPort, proto)
		}
		spec := fmt.Sprintf("%d:%d/%s", p.HostPort, p.ContainerPort, proto)
		if p.HostIP != "" {
			ip, err := netip.ParseAddr(p.HostIP)
			switch {
			case err != nil:
				return nil, service.Invalidf("invalid port mapping host address %q", p.HostIP)
			case ip.Is6() && !ip.IsUnspecified():
				return nil, service.Invalidf("publishing on the IPv6 host address %s is not supported yet: publish on an IPv4 one or on all", ip)
			case !ip.IsUnspecified():
				spec = ip.String() + ":" + spec
			}
		}
		out = append(out, spec)
	}
	return out, nil
}
