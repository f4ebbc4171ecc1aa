package dockerplugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// ErrNoSuchNetwork is Docker.Network's answer for an unknown id.
var ErrNoSuchNetwork = errors.New("no such Docker network")

// ErrNoDockerd says that nothing answers at docker-host (no dockerd on
// this host, or not yet).
var ErrNoDockerd = errors.New("no dockerd answers")

// ErrNoSuchEndpoint is Docker.EndpointNames's answer for an endpoint it
// does not show (yet).
var ErrNoSuchEndpoint = errors.New("no such Docker endpoint")

// dockerd is Docker over moby's client library, with the API version
// negotiated (Docker 20.10 speaks 1.41, the current engines more).
type dockerd struct{ c *client.Client }

// NewDocker returns the dockerd at host (unix:///PATH). Nothing is
// dialled before the first call.
func NewDocker(host string) (Docker, error) {
	c, err := client.New(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker-host %s: %w", host, err)
	}
	return &dockerd{c}, nil
}

func (d *dockerd) Networks(ctx context.Context) ([]DockerNetwork, error) {
	res, err := d.c.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("driver", Name)})
	if client.IsErrConnectionFailed(err) {
		return nil, fmt.Errorf("%w at %s", ErrNoDockerd, d.c.DaemonHost())
	}
	if err != nil {
		return nil, err
	}
	out := make([]DockerNetwork, 0, len(res.Items))
	for _, n := range res.Items {
		if n.Driver == Name { // the filter is a substring match
			out = append(out, fromDocker(n.Network))
		}
	}
	return out, nil
}

func (d *dockerd) Network(ctx context.Context, id string) (DockerNetwork, error) {
	res, err := d.c.NetworkInspect(ctx, id, client.NetworkInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return DockerNetwork{}, ErrNoSuchNetwork
	}
	if err != nil {
		return DockerNetwork{}, err
	}
	return fromDocker(res.Network.Network), nil
}

func (d *dockerd) CreateNetwork(ctx context.Context, n DockerNetwork) error {
	cfg := network.IPAMConfig{}
	var err error
	if cfg.Subnet, err = netip.ParsePrefix(n.Subnet); err != nil {
		return fmt.Errorf("network %s: subnet %q: %w", n.Name, n.Subnet, err)
	}
	if n.Gateway != "" {
		if cfg.Gateway, err = netip.ParseAddr(n.Gateway); err != nil {
			return fmt.Errorf("network %s: gateway %q: %w", n.Name, n.Gateway, err)
		}
	}
	if n.IPRange != "" {
		if cfg.IPRange, err = netip.ParsePrefix(n.IPRange); err != nil {
			return fmt.Errorf("network %s: ip range %q: %w", n.Name, n.IPRange, err)
		}
	}
	_, err = d.c.NetworkCreate(ctx, n.Name, client.NetworkCreateOptions{Driver: Name, Internal: n.Internal,
		IPAM: &network.IPAM{Driver: Name, Config: []network.IPAMConfig{cfg}}, Options: n.Options, Labels: n.Labels})
	return err
}

func (d *dockerd) RemoveNetwork(ctx context.Context, id string) error {
	_, err := d.c.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return err
}

func (d *dockerd) EndpointNames(ctx context.Context, networkID, endpointID string) (string, []string, error) {
	res, err := d.c.NetworkInspect(ctx, networkID, client.NetworkInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return "", nil, ErrNoSuchEndpoint
	}
	if err != nil {
		return "", nil, err
	}
	for cid, ep := range res.Network.Containers {
		if ep.EndpointID != endpointID {
			continue
		}
		c, err := d.c.ContainerInspect(ctx, cid, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return "", nil, ErrNoSuchEndpoint
		}
		if err != nil {
			return "", nil, err
		}
		var aliases []string
		if ns := c.Container.NetworkSettings; ns != nil && ns.Networks[res.Network.Name] != nil {
			aliases = ns.Networks[res.Network.Name].Aliases
		}
		return strings.TrimPrefix(c.Container.Name, "/"), aliases, nil
	}
	return "", nil, ErrNoSuchEndpoint
}

func (d *dockerd) Endpoints(ctx context.Context, networkID string) ([]string, error) {
	res, err := d.c.NetworkInspect(ctx, networkID, client.NetworkInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, ErrNoSuchNetwork
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(res.Network.Containers))
	for _, ep := range res.Network.Containers {
		out = append(out, ep.EndpointID)
	}
	return out, nil
}

func fromDocker(n network.Network) DockerNetwork {
	out := DockerNetwork{ID: n.ID, Name: n.Name, Driver: n.Driver, Internal: n.Internal, Options: n.Options, Labels: n.Labels}
	if len(n.IPAM.Config) > 0 {
		c := n.IPAM.Config[0]
		if c.Subnet.IsValid() {
			out.Subnet = c.Subnet.String()
		}
		if c.Gateway.IsValid() {
			out.Gateway = c.Gateway.String()
		}
		if c.IPRange.IsValid() {
			out.IPRange = c.IPRange.String()
		}
	}
	return out
}
