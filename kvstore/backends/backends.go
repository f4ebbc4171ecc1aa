// Package backends opens the kvstore backend a cluster-store URL names.
// It is separate from kvstore so that the interface package does not
// import every client library.
package backends

import (
	"errors"
	"fmt"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/consul"
	"github.com/meshnet/meshnet/kvstore/etcd"
	"github.com/meshnet/meshnet/kvstore/zookeeper"
)

// Open returns a Store for cfg, rooted at cfg.Prefix. For the embedded
// store the caller starts the server (kvstore/embedded) and puts its
// endpoints in cfg first; the agent is then an ordinary etcd client of it.
func Open(cfg kvstore.Config) (kvstore.Store, error) {
	var (
		s   kvstore.Store
		err error
	)
	switch cfg.Backend {
	case kvstore.BackendConsul:
		s, err = consul.New(cfg)
	case kvstore.BackendEtcd, kvstore.BackendEmbedded:
		if len(cfg.Endpoints) == 0 {
			return nil, errors.New("the embedded store is not running: no endpoints to connect to")
		}
		s, err = etcd.New(cfg)
	case kvstore.BackendZooKeeper:
		s, err = zookeeper.New(cfg)
	default:
		return nil, fmt.Errorf("unknown cluster store backend %q", cfg.Backend)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster store: %w", err)
	}
	return kvstore.WithPrefix(s, cfg.Prefix), nil
}
