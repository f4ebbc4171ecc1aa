package apiserver

import (
	"net/http"

	"github.com/meshnet/meshnet/agent/service"
)

// clusterRoutes serves agentctl cluster: the join token and the gossip
// key's rotation.
func clusterRoutes(c service.Cluster, handle func(pattern string, h func(*http.Request) (int, any, error))) {
	handle("GET /cluster/join-token", func(r *http.Request) (int, any, error) {
		t, err := c.JoinToken(r.Context(), false)
		return 200, t, err
	})
	handle("POST /cluster/join-token/rotate", func(r *http.Request) (int, any, error) {
		t, err := c.JoinToken(r.Context(), true)
		return 200, t, err
	})
	handle("POST /cluster/gossip-key/rotate", func(r *http.Request) (int, any, error) {
		return 204, nil, c.RotateGossipKey(r.Context())
	})
}
