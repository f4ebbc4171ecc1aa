package client

import (
	"context"
	"net/http"

	"github.com/meshnet/meshnet/agent/api"
)

// EndpointCreate leases an endpoint's addresses on a network; the
// endpoint joins no sandbox yet.
func (c *Client) EndpointCreate(ctx context.Context, req api.EndpointCreate) (api.Endpoint, error) {
	var ep api.Endpoint
	err := c.do(ctx, http.MethodPost, "/endpoints/create", nil, req, &ep)
	return ep, err
}

// EndpointInspect returns an endpoint of the agent's host by id.
func (c *Client) EndpointInspect(ctx context.Context, id string) (api.Endpoint, error) {
	var ep api.Endpoint
	path, err := objectPath("/endpoints", "endpoint", id, "")
	if err != nil {
		return ep, err
	}
	err = c.do(ctx, http.MethodGet, path, nil, nil, &ep)
	return ep, err
}

// EndpointJoin plumbs an endpoint into a sandbox.
func (c *Client) EndpointJoin(ctx context.Context, id string, req api.EndpointJoin) (api.Endpoint, error) {
	var ep api.Endpoint
	path, err := objectPath("/endpoints", "endpoint", id, "join")
	if err != nil {
		return ep, err
	}
	err = c.do(ctx, http.MethodPost, path, nil, req, &ep)
	return ep, err
}

// EndpointLeave takes an endpoint out of its sandbox; it keeps its
// addresses.
func (c *Client) EndpointLeave(ctx context.Context, id string) error {
	path, err := objectPath("/endpoints", "endpoint", id, "leave")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, nil, nil, nil)
}

// EndpointDelete gives a left endpoint's addresses back.
func (c *Client) EndpointDelete(ctx context.Context, id string) error {
	path, err := objectPath("/endpoints", "endpoint", id, "")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil, nil)
}
