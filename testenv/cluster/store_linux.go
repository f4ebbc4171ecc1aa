package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv"
)

// embeddedPort is where an agent with cluster-store: embedded serves etcd
// clients, on its advertise address.
const embeddedPort = 2379

// startStore starts the etcd, Consul or ZooKeeper server in a namespace
// of its own on the underlay; the embedded store starts with the first
// agent.
func (c *Cluster) startStore(ctx context.Context) error {
	if c.opts.Store == StoreEmbedded {
		return nil
	}
	h, err := c.underlay.AddHost("store", netip.PrefixFrom(StoreAddr, 24))
	if err != nil {
		return err
	}
	c.storeHost = h
	dir := filepath.Join(c.dir, "store")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	opts := testenv.ServerOptions{NS: h.NS, Addr: StoreAddr.String(), Persistent: true}
	switch c.opts.Store {
	case StoreEtcd:
		c.server, err = testenv.StartEtcdProcessWith(ctx, dir, opts)
	case StoreConsul:
		c.server, err = testenv.StartConsulWith(ctx, dir, opts)
	case StoreZooKeeper:
		c.server, err = testenv.StartZooKeeperWith(ctx, dir, opts)
	}
	if err != nil {
		return fmt.Errorf("starting the %s store: %w", c.opts.Store, err)
	}
	return nil
}

// storeURL is host n's cluster-store setting.
func (c *Cluster) storeURL(n int) string {
	switch c.opts.Store {
	case StoreEtcd:
		return "etcd://" + c.server.Config().Endpoints[0]
	case StoreConsul:
		return "consul://" + c.server.Config().Endpoints[0]
	case StoreZooKeeper:
		return "zk://" + c.server.Config().Endpoints[0]
	}
	if n == 1 {
		return "embedded"
	}
	return "etcd://" + c.embeddedAddr()
}

// storeOpts are the cluster-store-opt settings of every host.
func (c *Cluster) storeOpts() []string {
	if c.opts.Store == StoreConsul {
		return []string{"token=" + testenv.ConsulToken}
	}
	return nil
}

// joinTokenFile is the join token host n is given (a cluster-token-file):
// with the embedded store, n1's token file, for every other host.
func (c *Cluster) joinTokenFile(n int) string {
	if c.opts.Store != StoreEmbedded || n == 1 {
		return ""
	}
	return filepath.Join(c.trustDir(), "join-token")
}

// trustDir is n1's trust directory (agent/trust): with the embedded store,
// the cluster CA and n1's client certificate.
func (c *Cluster) trustDir() string { return filepath.Join(c.dir, "n1", "data", "tls") }

func (c *Cluster) embeddedAddr() string {
	return net.JoinHostPort("192.0.2.1", strconv.Itoa(embeddedPort))
}

// storeConfig is a client configuration of the store that dials from
// inside the namespace serving it.
func (c *Cluster) storeConfig() kvstore.Config {
	if c.server != nil {
		return c.server.Config()
	}
	dir := c.trustDir()
	return kvstore.Config{Backend: kvstore.BackendEtcd, Endpoints: []string{c.embeddedAddr()},
		Prefix: kvstore.DefaultPrefix, Timeout: kvstore.DefaultTimeout, Dial: c.Host(0).Dial,
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
}

// StopStore stops the cluster store, an outage: the etcd, Consul or
// ZooKeeper server, or for the embedded store n1's agent, which serves it. Both
// keep their data.
func (c *Cluster) StopStore() error {
	if c.server != nil {
		return c.server.Stop()
	}
	return c.Host(0).Stop()
}

// StartStore starts the store again after StopStore and waits until it
// serves.
func (c *Cluster) StartStore(ctx context.Context) error {
	if c.server != nil {
		return c.server.Start(ctx)
	}
	return c.Host(0).Start(ctx)
}

// StoreLog is the path of the store server's log ("" for the embedded
// store, which logs in n1's agent log).
func (c *Cluster) StoreLog() string {
	switch c.opts.Store {
	case StoreEtcd:
		return filepath.Join(c.dir, "store", "etcd.log")
	case StoreConsul:
		return filepath.Join(c.dir, "store", "consul.log")
	case StoreZooKeeper:
		return filepath.Join(c.dir, "store", "zookeeper.log")
	}
	return ""
}
