package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/meshnet/meshnet/agent/api"
)

// SandboxList returns every sandbox of this host.
func (c *Client) SandboxList(ctx context.Context) ([]api.Sandbox, error) {
	var sandboxes []api.Sandbox
	if err := c.do(ctx, http.MethodGet, "/sandboxes", nil, nil, &sandboxes); err != nil {
		return nil, err
	}
	return sandboxes, nil
}

// SandboxCreate creates a sandbox and returns its id.
func (c *Client) SandboxCreate(ctx context.Context, req api.SandboxCreate) (api.CreateResponse, error) {
	var resp api.CreateResponse
	err := c.do(ctx, http.MethodPost, "/sandboxes/create", nil, req, &resp)
	return resp, err
}

// SandboxInspect returns one sandbox by id or name.
func (c *Client) SandboxInspect(ctx context.Context, idOrName string) (api.Sandbox, error) {
	var sandbox api.Sandbox
	path, err := objectPath("/sandboxes", "sandbox", idOrName, "")
	if err != nil {
		return sandbox, err
	}
	err = c.do(ctx, http.MethodGet, path, nil, nil, &sandbox)
	return sandbox, err
}

// SandboxRemove removes a sandbox by id or name; force removes it even
// when the agent would otherwise refuse (as Docker's rm -f does).
func (c *Client) SandboxRemove(ctx context.Context, idOrName string, force bool) error {
	path, err := objectPath("/sandboxes", "sandbox", idOrName, "")
	if err != nil {
		return err
	}
	var query url.Values
	if force {
		query = url.Values{"force": {"1"}}
	}
	return c.do(ctx, http.MethodDelete, path, query, nil, nil)
}
