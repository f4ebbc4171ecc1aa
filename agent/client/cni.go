package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/meshnet/meshnet/agent/api"
)

// CNIAdd attaches a container's namespace to a network (the CNI plugin's
// ADD).
func (c *Client) CNIAdd(ctx context.Context, req api.CNIAdd) (api.CNIResult, error) {
	var res api.CNIResult
	err := c.do(ctx, http.MethodPost, "/cni/add", nil, req, &res)
	return res, err
}

// CNICheck verifies an attachment, in the agent's records and in the
// kernel.
func (c *Client) CNICheck(ctx context.Context, req api.CNICheck) (api.CNIResult, error) {
	var res api.CNIResult
	err := c.do(ctx, http.MethodPost, "/cni/check", nil, req, &res)
	return res, err
}

// CNIDel releases an attachment; nothing attached is not an error.
func (c *Client) CNIDel(ctx context.Context, req api.CNIDel) error {
	return c.do(ctx, http.MethodPost, "/cni/del", nil, req, nil)
}

// CNIGC releases the network's attachments on the agent's host that are
// not in req.Valid.
func (c *Client) CNIGC(ctx context.Context, req api.CNIGC) (api.CNIGCResult, error) {
	var res api.CNIGCResult
	err := c.do(ctx, http.MethodPost, "/cni/gc", nil, req, &res)
	return res, err
}

// CNIStatus returns why an ADD on the network would fail now, or nil.
func (c *Client) CNIStatus(ctx context.Context, network string) error {
	return c.do(ctx, http.MethodGet, "/cni/status", url.Values{"network": {network}}, nil, nil)
}
