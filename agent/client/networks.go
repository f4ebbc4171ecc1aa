package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/meshnet/meshnet/agent/api"
)

// NetworkList returns the networks that match every filter (Docker's
// filters: "name", "id", "driver", "scope", "label", … as the agent
// supports them); nil or empty filters match all networks.
func (c *Client) NetworkList(ctx context.Context, filters map[string][]string) ([]api.Network, error) {
	var query url.Values
	if len(filters) > 0 {
		data, err := json.Marshal(filters)
		if err != nil {
			return nil, fmt.Errorf("encoding filters: %w", err)
		}
		query = url.Values{"filters": {string(data)}}
	}
	var networks []api.Network
	if err := c.do(ctx, http.MethodGet, "/networks", query, nil, &networks); err != nil {
		return nil, err
	}
	return networks, nil
}

// NetworkCreate creates a network and returns its id.
func (c *Client) NetworkCreate(ctx context.Context, req api.NetworkCreate) (api.CreateResponse, error) {
	var resp api.CreateResponse
	err := c.do(ctx, http.MethodPost, "/networks/create", nil, req, &resp)
	return resp, err
}

// NetworkInspect returns one network by id or name.
func (c *Client) NetworkInspect(ctx context.Context, idOrName string) (api.Network, error) {
	var network api.Network
	path, err := objectPath("/networks", "network", idOrName, "")
	if err != nil {
		return network, err
	}
	err = c.do(ctx, http.MethodGet, path, nil, nil, &network)
	return network, err
}

// NetworkRemove removes a network by id or name.
func (c *Client) NetworkRemove(ctx context.Context, idOrName string) error {
	path, err := objectPath("/networks", "network", idOrName, "")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil, nil)
}

// NetworkPrune removes every network that no sandbox uses.
func (c *Client) NetworkPrune(ctx context.Context) (api.PruneResponse, error) {
	var resp api.PruneResponse
	err := c.do(ctx, http.MethodPost, "/networks/prune", nil, nil, &resp)
	return resp, err
}

// NetworkConnect attaches a sandbox to a network.
func (c *Client) NetworkConnect(ctx context.Context, network string, req api.NetworkConnect) error {
	path, err := objectPath("/networks", "network", network, "connect")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, nil, req, nil)
}

// NetworkDisconnect detaches a sandbox from a network.
func (c *Client) NetworkDisconnect(ctx context.Context, network string, req api.NetworkDisconnect) error {
	path, err := objectPath("/networks", "network", network, "disconnect")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, nil, req, nil)
}
