package kvstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Backend names a kind of cluster store.
type Backend string

// The backends a cluster-store URL can name.
const (
	BackendEtcd      Backend = "etcd"
	BackendConsul    Backend = "consul"
	BackendZooKeeper Backend = "zk"
	BackendEmbedded  Backend = "embedded"
)

// DefaultPrefix is the root under which meshnet keeps its keys when the
// cluster-store URL names no prefix.
const DefaultPrefix = "meshnet/v1/"

// DefaultTimeout bounds every store call whose context has no earlier
// deadline.
const DefaultTimeout = 5 * time.Second

// Config is a parsed cluster-store URL plus its options
// (cluster-store-opt).
type Config struct {
	Backend   Backend
	Endpoints []string // host:port; set by the agent for the embedded store
	Prefix    string   // root prefix, always ending in "/"

	CAFile, CertFile, KeyFile string // TLS
	// PrivateCA says the CA is the cluster's own (an agent's embedded
	// store): the store's certificate is checked against it, but not
	// against the name the store is reached by — hosts reach it by
	// whatever name or address their network gives it. Never parsed
	// from a URL.
	PrivateCA          bool
	Token              string // Consul ACL token
	Username, Password string // etcd authentication, ZooKeeper digest
	Timeout            time.Duration

	// Dial opens the connections to the store; nil means the default
	// dialer — tests set it to dial from inside a network namespace. It is
	// never parsed from a URL.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// String renders the config as a URL, without secrets.
func (c Config) String() string {
	if c.Backend == BackendEmbedded {
		return string(BackendEmbedded)
	}
	return string(c.Backend) + "://" + strings.Join(c.Endpoints, ",") + "/" + strings.TrimSuffix(c.Prefix, "/")
}

// ParseURL parses a cluster-store URL — consul://HOST:PORT[/PREFIX],
// etcd://HOST:PORT[,HOST:PORT…][/PREFIX], zk://HOST:PORT[,HOST:PORT…][/PREFIX]
// or embedded — and its key=value
// options (ca, cert, key, token, username, password, timeout). The error,
// if any, is one sentence naming what is wrong.
func ParseURL(raw string, opts []string) (Config, error) {
	cfg, err := parseURL(strings.TrimSpace(raw))
	if err != nil {
		return Config{}, fmt.Errorf("invalid cluster store URL %q: %w", raw, err)
	}
	if err := cfg.applyOptions(opts); err != nil {
		return Config{}, fmt.Errorf("invalid cluster-store-opt: %w", err)
	}
	return cfg, nil
}

func parseURL(raw string) (Config, error) {
	cfg := Config{Prefix: DefaultPrefix, Timeout: DefaultTimeout}
	if raw == "" {
		return cfg, errors.New("it is empty; use consul://HOST:PORT, etcd://HOST:PORT, zk://HOST:PORT or embedded")
	}
	if raw == "embedded" || raw == "embedded://" {
		cfg.Backend = BackendEmbedded
		return cfg, nil
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return cfg, errors.New("it has no scheme; use consul://HOST:PORT, etcd://HOST:PORT, zk://HOST:PORT or embedded")
	}
	switch Backend(scheme) {
	case BackendEtcd, BackendConsul, BackendZooKeeper:
		cfg.Backend = Backend(scheme)
	default:
		return cfg, fmt.Errorf("unknown scheme %q (known: consul, etcd, zk, embedded)", scheme)
	}
	if strings.ContainsAny(rest, "?#@") {
		return cfg, errors.New("queries, fragments and user info are not allowed; pass options with cluster-store-opt")
	}
	hosts, prefix, _ := strings.Cut(rest, "/")
	if hosts == "" {
		return cfg, errors.New("it names no HOST:PORT")
	}
	for _, hp := range strings.Split(hosts, ",") {
		if err := checkHostPort(hp); err != nil {
			return cfg, err
		}
		cfg.Endpoints = append(cfg.Endpoints, hp)
	}
	if cfg.Backend == BackendConsul && len(cfg.Endpoints) > 1 {
		return cfg, errors.New("consul takes one HOST:PORT (the local Consul agent)")
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, " \t\n") {
				return cfg, fmt.Errorf("prefix %q is not a clean key path", prefix)
			}
		}
		cfg.Prefix = prefix + "/"
	}
	return cfg, nil
}

func checkHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", hp)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", hp)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q has an invalid port (1-65535)", hp)
	}
	return nil
}

func (c *Config) applyOptions(opts []string) error {
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("%q is not key=value", o)
		}
		switch k {
		case "ca":
			c.CAFile = v
		case "cert":
			c.CertFile = v
		case "key":
			c.KeyFile = v
		case "token":
			c.Token = v
		case "username":
			c.Username = v
		case "password":
			c.Password = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("timeout %q is not a positive duration such as 5s", v)
			}
			c.Timeout = d
		default:
			return fmt.Errorf("unknown option %q (known: ca, cert, key, token, username, password, timeout)", k)
		}
	}
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("cert and key must be given together")
	case c.Token != "" && c.Backend != BackendConsul:
		return errors.New("token applies to consul only")
	case (c.Username != "" || c.Password != "") && c.Backend == BackendConsul:
		return errors.New("username and password apply to etcd and zk only; use token for consul")
	case c.Password != "" && c.Username == "":
		return errors.New("password given without username")
	}
	return nil
}

// TLSConfig loads the configured CA and client certificate. It returns nil
// when no TLS option is set. Every error names the option and its file:
// missing, not PEM, not a pair, expired.
func (c Config) TLSConfig() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster-store-opt ca: cannot read %s: %w", c.CAFile, unwrapPath(err))
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster-store-opt ca: %s holds no PEM certificate", c.CAFile)
		}
		if c.PrivateCA {
			roots := t.RootCAs
			t.InsecureSkipVerify = true // the chain is verified below, the name is not
			t.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the store shows no certificate")
				}
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
				return err
			}
		}
	}
	if c.CertFile != "" {
		for _, f := range []struct{ opt, path string }{{"cert", c.CertFile}, {"key", c.KeyFile}} {
			if _, err := os.Stat(f.path); err != nil {
				return nil, fmt.Errorf("cluster-store-opt %s: cannot read %s: %w", f.opt, f.path, unwrapPath(err))
			}
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster-store-opt cert and key: %s and %s are not a certificate and its key", c.CertFile, c.KeyFile)
		}
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
			if now := time.Now(); now.After(leaf.NotAfter) {
				return nil, fmt.Errorf("cluster-store-opt cert: %s expired on %s", c.CertFile, leaf.NotAfter.Format(time.DateOnly))
			} else if now.Before(leaf.NotBefore) {
				return nil, fmt.Errorf("cluster-store-opt cert: %s is not valid before %s", c.CertFile, leaf.NotBefore.Format(time.DateOnly))
			}
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// unwrapPath drops the path from a file error, which the message names
// already.
func unwrapPath(err error) error {
	if e := errors.Unwrap(err); e != nil {
		return e
	}
	return err
}
