package agent

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/agent/storeconn"
	"github.com/meshnet/meshnet/agent/trust"
)

// rotateStepWait is how long a gossip key rotation waits between its
// steps: every agent reads the keyring every second.
const rotateStepWait = 3 * time.Second

// clusterAdmin is `agentctl cluster`: the join token of the embedded
// store's CA and the rotation of the gossip keyring (service.Cluster).
type clusterAdmin struct {
	conn      *storeconn.Conn
	vtep      string
	fixedKeys bool // gossip-key is set: the store's keyring is not used
}

func (c clusterAdmin) JoinToken(_ context.Context, rotate bool) (api.JoinToken, error) {
	auth := c.conn.Authority()
	if auth == nil {
		return api.JoinToken{}, service.Conflictf("this agent does not serve the embedded store, so it has no join token: run the command on the host whose cluster-store is embedded")
	}
	t := auth.Token()
	if rotate {
		var err error
		if t, err = auth.RotateToken(); err != nil {
			return api.JoinToken{}, err
		}
	}
	return api.JoinToken{Token: t.String(), Store: "etcd://" + net.JoinHostPort(c.vtep, strconv.Itoa(storeconn.EmbeddedClientPort))}, nil
}

func (c clusterAdmin) RotateGossipKey(ctx context.Context) error {
	if c.fixedKeys {
		return service.Conflictf("this agent's gossip key is set by gossip-key, not taken from the cluster store: change gossip-key on every host instead")
	}
	s, ok := c.conn.Ready()
	if !ok {
		return service.Unavailablef("the cluster store is unreachable: the gossip keyring lives there")
	}
	if err := trust.RotateKeys(ctx, s, rotateStepWait); err != nil {
		return service.Unavailablef("rotating the gossip key: %v", err)
	}
	return nil
}
