package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/meshnet/meshnet/kvstore"
)

// zooKeeperJar is the server of Debian's zookeeper package (make deps
// installs it). Its manifest names the jars it needs; the classpath adds
// the configuration directory, a logger and the Netty codecs that TLS
// connections need and the manifest does not name.
const zooKeeperJar = "/usr/share/java/zookeeper.jar"

var zooKeeperClasspath = strings.Join([]string{
	"/etc/zookeeper/conf",
	zooKeeperJar,
	"/usr/share/java/slf4j-simple.jar",
	"/usr/share/java/netty-codec.jar",
	"/usr/share/java/netty-resolver.jar",
}, ":")

// ZooKeeperServer is a standalone ZooKeeper 3.8 server in a Java process
// of its own, keeping its data in its directory across Stop and Start.
// Sessions may be as short as 1s (minSessionTimeout), so that TTL expiry
// can be tested quickly, and up to 60s; connections per client address are
// not limited, since every test client connects from one address.
type ZooKeeperServer struct {
	dir  string
	opts ServerOptions
	port int
	tls  *zooKeeperTLS // nil: plain connections
	proc *Process
}

// StartZooKeeper starts a ZooKeeper server on loopback with data under
// dir; its log goes to dir/zookeeper.log.
func StartZooKeeper(ctx context.Context, dir string) (*ZooKeeperServer, error) {
	return StartZooKeeperWith(ctx, dir, ServerOptions{})
}

// StartZooKeeperWith starts a ZooKeeper server placed as opts say, with
// data under dir (Persistent is implied).
func StartZooKeeperWith(ctx context.Context, dir string, opts ServerOptions) (*ZooKeeperServer, error) {
	ports, err := opts.ports(2181)
	if err != nil {
		return nil, err
	}
	s := &ZooKeeperServer{dir: dir, opts: opts, port: ports[0]}
	return s, s.Start(ctx)
}

func (s *ZooKeeperServer) Name() string { return "zookeeper" }

// Addr is the HOST:PORT clients connect to.
func (s *ZooKeeperServer) Addr() string { return hostPort(s.opts.addr(), s.port) }

func (s *ZooKeeperServer) Config() kvstore.Config {
	cfg := kvstore.Config{Backend: kvstore.BackendZooKeeper, Endpoints: []string{s.Addr()},
		Prefix: kvstore.DefaultPrefix, Timeout: kvstore.DefaultTimeout, Dial: s.opts.dial()}
	if s.tls != nil {
		cfg.CAFile = s.tls.caFile
	}
	return cfg
}

func (s *ZooKeeperServer) dataDir() string { return filepath.Join(s.dir, "zookeeper-data") }

// config is the server's zoo.cfg. The admin HTTP server is off (it would
// take port 8080).
func (s *ZooKeeperServer) config() string {
	lines := []string{
		"tickTime=500",
		"minSessionTimeout=1000",
		"maxSessionTimeout=60000",
		"maxClientCnxns=0",
		"admin.enableServer=false",
		"dataDir=" + s.dataDir(),
	}
	if s.tls == nil {
		lines = append(lines, "clientPortAddress="+s.opts.addr(), "clientPort="+strconv.Itoa(s.port))
	} else {
		lines = append(lines, s.tls.config(s.opts.addr(), s.port)...)
	}
	return strings.Join(lines, "\n") + "\n"
}

func (s *ZooKeeperServer) Start(ctx context.Context) error {
	if _, err := os.Stat(zooKeeperJar); err != nil {
		return fmt.Errorf("ZooKeeper is not installed (%s is missing): apt-get install zookeeper, or make deps", zooKeeperJar)
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return fmt.Errorf("ZooKeeper needs java: %w", err)
	}
	cfgFile := filepath.Join(s.dir, "zoo.cfg")
	if err := os.WriteFile(cfgFile, []byte(s.config()), 0o644); err != nil {
		return err
	}
	s.proc, err = StartProcess(java, []string{"-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", zooKeeperClasspath, "org.apache.zookeeper.server.ZooKeeperServerMain", cfgFile},
		ProcessOptions{Log: filepath.Join(s.dir, "zookeeper.log"), NS: s.opts.NS})
	if err != nil {
		return err
	}
	if err := waitReady(ctx, s.Config(), s.proc.Exited()); err != nil {
		s.Stop()
		return fmt.Errorf("zookeeper server (log in %s): %w", s.dir, err)
	}
	return nil
}

// Stop stops the server; it keeps its data.
func (s *ZooKeeperServer) Stop() error {
	s.proc.Stop(10 * time.Second)
	s.proc = nil
	return nil
}

// Close stops the server and removes its data and configuration.
func (s *ZooKeeperServer) Close() error {
	s.Stop()
	return errors.Join(os.RemoveAll(s.dataDir()), os.RemoveAll(filepath.Join(s.dir, "zoo.cfg")),
		s.tls.remove())
}

// StartZooKeeperTLS starts a ZooKeeper server on loopback that takes TLS
// connections only, with a certificate from a throw-away CA; its Config
// names the CA.
func StartZooKeeperTLS(ctx context.Context, dir string) (*ZooKeeperServer, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	s := &ZooKeeperServer{dir: dir, port: ports[0]}
	if s.tls, err = newZooKeeperTLS(dir, s.opts.addr()); err != nil {
		return nil, err
	}
	return s, s.Start(ctx)
}

// zooKeeperTLS is the key material of a TLS server, in the PEM files
// ZooKeeper reads (ssl.keyStore.type=PEM): the CA's certificate, and the
// server's key and certificate for its IP address.
type zooKeeperTLS struct {
	caFile, keyStoreFile string
}

func newZooKeeperTLS(dir, ip string) (*zooKeeperTLS, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshnet test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	t := &zooKeeperTLS{caFile: filepath.Join(dir, "zk-ca.pem"), keyStoreFile: filepath.Join(dir, "zk-server.pem")}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	keyStore := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := errors.Join(os.WriteFile(t.caFile, ca, 0o644), os.WriteFile(t.keyStoreFile, keyStore, 0o600)); err != nil {
		return nil, err
	}
	return t, nil
}

// config is the zoo.cfg part of a server taking TLS connections only (on
// the Netty connection factory, which TLS needs).
func (t *zooKeeperTLS) config(addr string, port int) []string {
	return []string{
		"serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
		"secureClientPortAddress=" + addr,
		"secureClientPort=" + strconv.Itoa(port),
		"ssl.keyStore.location=" + t.keyStoreFile,
		"ssl.keyStore.type=PEM",
		"ssl.trustStore.location=" + t.caFile,
		"ssl.trustStore.type=PEM",
		"ssl.clientAuth=none",
	}
}

func (t *zooKeeperTLS) remove() error {
	if t == nil {
		return nil
	}
	return errors.Join(os.RemoveAll(t.caFile), os.RemoveAll(t.keyStoreFile))
}
