package testenv

import (
	"context"
	"net"
	"strconv"

	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// ServerOptions place a store server process. The zero value serves on
// loopback of the caller's namespace, on free ports.
type ServerOptions struct {
	// NS is the network namespace the server runs in; nil means the
	// caller's. The namespace is the server's own, so it uses the
	// backend's standard ports there (etcd 2379/2380, Consul 8500, 8300…),
	// and its Config dials through NS, so the caller (in another
	// namespace) can be a client too.
	NS *nshost.NS
	// Addr is the IP the server serves clients on (and Consul binds to);
	// default 127.0.0.1. With NS, an address of NS such as its underlay
	// address, so that hosts on the underlay reach it.
	Addr string
	// Persistent makes a Consul server keep its data in its directory
	// across Stop and Start, as etcd does, instead of dev mode's memory:
	// a single server that elects itself leader (a few seconds longer to
	// start). It does not apply to etcd.
	Persistent bool
	// TLS, for etcd and Consul, serves clients with TLS only, with the
	// PKI's server certificate, taking only client certificates of its
	// CA; Config then carries the PKI's client certificate.
	TLS *PKI
}

// clientTLS puts the PKI's client files into cfg.
func (o ServerOptions) clientTLS(cfg kvstore.Config) kvstore.Config {
	if o.TLS != nil {
		cfg.CAFile, cfg.CertFile, cfg.KeyFile = o.TLS.File("ca.pem"), o.TLS.File("client.pem"), o.TLS.File("client-key.pem")
	}
	return cfg
}

func (o ServerOptions) addr() string {
	if o.Addr == "" {
		return "127.0.0.1"
	}
	return o.Addr
}

// ports returns the standard ports in a namespace of the server's own,
// else n free ports of the caller's loopback.
func (o ServerOptions) ports(standard ...int) ([]int, error) {
	if o.NS != nil {
		return standard, nil
	}
	return freePorts(len(standard))
}

// dial is the Dial of the server's client config: nil (the default
// dialer) outside a namespace.
func (o ServerOptions) dial() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if o.NS == nil {
		return nil
	}
	return o.NS.Dial
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
