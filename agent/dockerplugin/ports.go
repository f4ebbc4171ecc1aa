package dockerplugin

// Published ports: Docker hands a remote driver the container's -p and -P
// in ProgramExternalConnectivity, for the endpoint that gives it its
// gateway; they become the sandbox's published ports in meshnet's filter.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/meshnet/meshnet/agent/service"
)

// maxPortBindings bounds a container's published ports (the request
// holding them is bounded too, by maxRequestBytes).
const maxPortBindings = 1024

// portBinding is one entry of Docker's portmap option.
type portBinding struct {
	Proto       int    // IANA protocol number
	IP          string // the container's address (ignored: the endpoint's)
	Port        int
	HostIP      string
	HostPort    int // 0: any
	HostPortEnd int
}

// publishSpecs turns Docker's portmap into -p values.
func publishSpecs(raw any) ([]string, error) {
	if raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var pbs []portBinding
	if err := json.Unmarshal(b, &pbs); err != nil {
		return nil, errors.New("invalid port bindings from dockerd")
	}
	if len(pbs) > maxPortBindings {
		return nil, fmt.Errorf("%d port bindings: at most %d are published per container", len(pbs), maxPortBindings)
	}
	var specs []string
	for _, pb := range pbs {
		proto := map[int]string{6: "tcp", 17: "udp"}[pb.Proto]
		if proto == "" {
			return nil, fmt.Errorf("publishing ports of protocol %d is not supported: tcp and udp are", pb.Proto)
		}
		if pb.Port < 1 || pb.Port > 65535 || pb.HostPort < 0 || pb.HostPort > 65535 || pb.HostPortEnd < 0 || pb.HostPortEnd > 65535 {
			return nil, fmt.Errorf("invalid port binding %d:%d", pb.HostPort, pb.Port)
		}
		host := ""
		if pb.HostIP != "" {
			a, err := netip.ParseAddr(pb.HostIP)
			if err != nil {
				return nil, fmt.Errorf("invalid host address %q", pb.HostIP)
			}
			if a.Is6() {
				host = "[" + a.String() + "]:"
			} else {
				host = a.String() + ":"
			}
		}
		hp := ""
		if pb.HostPort > 0 {
			hp = strconv.Itoa(pb.HostPort)
			if pb.HostPortEnd > pb.HostPort {
				hp += "-" + strconv.Itoa(pb.HostPortEnd)
			}
		}
		spec := strconv.Itoa(pb.Port) + "/" + proto
		if host != "" || hp != "" {
			spec = host + hp + ":" + spec
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// programExternal publishes the container's ports (-p, -P): Docker asks
// it of the endpoint that gives the container its gateway.
func (p *Plugin) programExternal(ctx context.Context, req *network.ProgramExternalConnectivityRequest) (*struct{}, error) {
	if err := checkID("endpoint", req.EndpointID); err != nil {
		return nil, err
	}
	specs, err := publishSpecs(req.Options[optPortMap])
	if err != nil || len(specs) == 0 {
		return &struct{}{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	sb, err := p.sandboxOf(ctx, req.EndpointID)
	if err != nil {
		return nil, err
	}
	_, err = p.svc.SandboxPublish(ctx, sb, specs)
	return &struct{}{}, err
}

// revokeExternal unpublishes the container's ports.
func (p *Plugin) revokeExternal(ctx context.Context, req *network.RevokeExternalConnectivityRequest) (*struct{}, error) {
	if err := checkID("endpoint", req.EndpointID); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	sb, err := p.sandboxOf(ctx, req.EndpointID)
	if errors.Is(err, errNotJoined) {
		return &struct{}{}, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := p.svc.SandboxPublish(ctx, sb, nil); err != nil && !errors.Is(err, service.ErrNotFound) {
		return nil, err
	}
	return &struct{}{}, nil
}

var errNotJoined = errors.New("the endpoint is in no sandbox")

// sandboxOf is the sandbox a Docker endpoint is joined to. The caller
// holds p.mu.
func (p *Plugin) sandboxOf(ctx context.Context, dockerEP string) (string, error) {
	b, ok := p.state.Endpoints[dockerEP]
	if !ok {
		return "", fmt.Errorf("endpoint %.12s is not a meshnet endpoint of this host", dockerEP)
	}
	ep, err := p.svc.EndpointInspect(ctx, b.Endpoint)
	if errors.Is(err, service.ErrNotFound) {
		return "", errNotJoined
	}
	if err != nil {
		return "", err
	}
	if ep.Sandbox == "" {
		return "", errNotJoined
	}
	return ep.Sandbox, nil
}
