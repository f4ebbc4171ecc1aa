// Package trust is how the agents of a cluster whose store is an agent's
// embedded one know each other, as `docker swarm init` and `swarm join`
// do it: the agent serving the store is the cluster's certificate
// authority; it prints a join token (the CA's fingerprint and a secret);
// another agent given the token fetches a client certificate once, over
// TLS pinned to that fingerprint, and from then on reaches the store with
// it — the embedded store takes clients with a certificate of the CA only.
// The gossip keyring lives in the store (keyring.go), so gossip is
// encrypted with a key no one off the cluster has.
//
// Files, in DIR (data-dir/tls, mode 0700, every file 0600): ca.pem,
// cert.pem and key.pem on every member (the CA and this host's client
// certificate); on the host serving the store also ca-key.pem,
// server.pem, server-key.pem and join-token.
package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The files in the trust directory.
const (
	CAFile         = "ca.pem"
	CertFile       = "cert.pem"
	KeyFile        = "key.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
	tokenFile      = "join-token"
)

// Lifetimes: the CA's, and a certificate's (client or server).
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	certLifetime = 365 * 24 * time.Hour
	// renewBefore: a certificate of the authority's own expiring sooner
	// than this is issued again at start.
	renewBefore = 30 * 24 * time.Hour
)

// Dir is a trust directory.
type Dir string

// Path is the path of one of its files.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// Authority is the cluster's certificate authority, on the host serving
// the embedded store.
type Authority struct {
	dir    Dir
	ca     *x509.Certificate
	caPEM  []byte
	caKey  *ecdsa.PrivateKey
	server []byte // server.pem: the server certificate, then the CA

	mu    sync.Mutex
	token Token // guarded by mu
}

// OpenAuthority loads the authority from dir, making the CA and the join
// token the first time; it issues the store's server certificate for
// vtep (and loopback) and this host's client certificate (CN node) when
// they are missing, from another CA, or close to expiry.
func OpenAuthority(dir Dir, node string, vtep netip.Addr) (*Authority, error) {
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return nil, fmt.Errorf("making the trust directory: %w", err)
	}
	a := &Authority{dir: dir}
	var err error
	if a.ca, a.caKey, err = loadPair(dir.Path(CAFile), dir.Path(caKeyFile)); errors.Is(err, os.ErrNotExist) {
		err = a.makeCA()
	}
	if err != nil {
		return nil, fmt.Errorf("the cluster CA in %s: %w", dir, err)
	}
	a.caPEM = encodeCert(a.ca.Raw)
	if a.token, err = a.loadToken(); err != nil {
		return nil, err
	}
	if err := a.issueServer(node, vtep); err != nil {
		return nil, err
	}
	if cert, err := readCert(dir.Path(CertFile)); err != nil || cert.Subject.CommonName != node || !a.validHere(dir.Path(CertFile), dir.Path(KeyFile)) {
		key, err := newKey()
		if err != nil {
			return nil, err
		}
		der, err := a.sign(node, &key.PublicKey, false, nil)
		if err != nil {
			return nil, err
		}
		if err := writePair(dir, CertFile, KeyFile, encodeCert(der), key); err != nil {
			return nil, err
		}
	}
	return a, writeFile(dir.Path(CAFile), a.caPEM)
}

// ServerFiles are the store's server certificate (with the CA after it)
// and key.
func (a *Authority) ServerFiles() (cert, key string) {
	return a.dir.Path(serverCertFile), a.dir.Path(serverKeyFile)
}

// Token is the current join token.
func (a *Authority) Token() Token {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token
}

// RotateToken replaces the join token's secret: the old token joins no
// one from now on; hosts that joined keep their certificates.
func (a *Authority) RotateToken() (Token, error) {
	t, err := newToken(a.ca)
	if err != nil {
		return Token{}, err
	}
	if err := writeFile(a.dir.Path(tokenFile), []byte(t.String()+"\n")); err != nil {
		return Token{}, err
	}
	a.mu.Lock()
	a.token = t
	a.mu.Unlock()
	return t, nil
}

// checkSecret reports whether secret is the current token's, in constant
// time.
func (a *Authority) checkSecret(secret string) bool {
	a.mu.Lock()
	want := a.token.Secret
	a.mu.Unlock()
	return subtle.ConstantTimeCompare([]byte(secret), []byte(want)) == 1
}

func (a *Authority) makeCA() error {
	key, err := newKey()
	if err != nil {
		return err
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "meshnet cluster CA", Organization: []string{"meshnet"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if a.ca, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	a.caKey = key
	// The token goes with the CA: a new CA makes every old token void.
	os.Remove(a.dir.Path(tokenFile))
	return writePair(a.dir, CAFile, caKeyFile, encodeCert(der), key)
}

func (a *Authority) loadToken() (Token, error) {
	b, err := os.ReadFile(a.dir.Path(tokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return a.RotateToken()
	}
	if err != nil {
		return Token{}, err
	}
	t, err := ParseToken(string(trimNewline(b)))
	if err != nil || t.CAHash != Fingerprint(a.ca) {
		return a.RotateToken() // damaged, or of another CA
	}
	return t, nil
}

// issueServer issues the store's server certificate at every start, so
// that it names the current advertise address, the node and the host
// (for tools such as etcdctl; agents check the chain, not the name).
func (a *Authority) issueServer(node string, vtep netip.Addr) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	if vtep.IsValid() {
		ips = append(ips, vtep.AsSlice())
	}
	dns := []string{"localhost", node}
	if h, err := os.Hostname(); err == nil && h != node {
		dns = append(dns, h)
	}
	der, err := a.sign("meshnet store", &key.PublicKey, true, ips, dns...)
	if err != nil {
		return err
	}
	return writePair(a.dir, serverCertFile, serverKeyFile, append(encodeCert(der), a.caPEM...), key)
}

// validHere reports whether the certificate and key at those paths are a
// pair issued by this CA and not close to expiry.
func (a *Authority) validHere(certPath, keyPath string) bool {
	cert, _, err := loadPair(certPath, keyPath)
	if err != nil || time.Until(cert.NotAfter) < renewBefore {
		return false
	}
	return cert.CheckSignatureFrom(a.ca) == nil
}

// sign issues a certificate for pub: a server's (for ips) or a client's
// (CN name).
func (a *Authority) sign(name string, pub *ecdsa.PublicKey, server bool, ips []net.IP, dns ...string) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"meshnet"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = ips
		tmpl.DNSNames = dns
	}
	return x509.CreateCertificate(rand.Reader, tmpl, a.ca, pub, a.caKey)
}

// Fingerprint is the SHA-256 of a certificate's DER form.
func Fingerprint(c *x509.Certificate) [32]byte { return sha256.Sum256(c.Raw) }

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// loadPair reads a certificate (the first of its file) and its ECDSA key.
func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, err := readCert(certPath)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(kb)
	if block == nil {
		return nil, nil, fmt.Errorf("%s holds no PEM key", keyPath)
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("%s is not the key of %s", keyPath, certPath)
	}
	return cert, key, nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// writePair writes a certificate and its key, both 0600.
func writePair(dir Dir, certName, keyName string, certPEM []byte, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(dir.Path(keyName), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return err
	}
	return writeFile(dir.Path(certName), certPEM)
}

// writeFile replaces path atomically with data, mode 0600.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
