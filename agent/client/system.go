package client

import (
	"context"
	"net/http"

	"github.com/meshnet/meshnet/agent/api"
)

// NodeList returns the members of the cluster.
func (c *Client) NodeList(ctx context.Context) ([]api.Node, error) {
	var nodes []api.Node
	if err := c.do(ctx, http.MethodGet, "/nodes", nil, nil, &nodes); err != nil {
		return nil, err
	}
	return nodes, nil
}

// Info returns the agent's summary of itself and its cluster.
func (c *Client) Info(ctx context.Context) (api.Info, error) {
	var info api.Info
	err := c.do(ctx, http.MethodGet, "/info", nil, nil, &info)
	return info, err
}

// Version returns the agent's version.
func (c *Client) Version(ctx context.Context) (api.VersionInfo, error) {
	var v api.VersionInfo
	err := c.do(ctx, http.MethodGet, "/version", nil, nil, &v)
	return v, err
}

// JoinToken returns the join token of the cluster whose embedded store the
// agent serves; rotate replaces it first.
func (c *Client) JoinToken(ctx context.Context, rotate bool) (api.JoinToken, error) {
	var t api.JoinToken
	if rotate {
		err := c.do(ctx, http.MethodPost, "/cluster/join-token/rotate", nil, nil, &t)
		return t, err
	}
	err := c.do(ctx, http.MethodGet, "/cluster/join-token", nil, nil, &t)
	return t, err
}

// RotateGossipKey replaces the cluster's gossip key.
func (c *Client) RotateGossipKey(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/cluster/gossip-key/rotate", nil, nil, nil)
}
