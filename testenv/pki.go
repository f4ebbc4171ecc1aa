package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is a test certificate authority's files in a directory: the CA
// (ca.pem), a server certificate for an IP (server.pem, server-key.pem),
// a client certificate (client.pem, client-key.pem), an expired client
// certificate (expired.pem, expired-key.pem), and another CA
// (other-ca.pem) with a client certificate of its own (other.pem,
// other-key.pem).
type PKI struct{ Dir string }

// File is the path of one of the PKI's files.
func (p PKI) File(name string) string { return filepath.Join(p.Dir, name) }

// NewPKI writes a PKI into dir for a server at ip.
func NewPKI(dir, ip string) (PKI, error) {
	p := PKI{Dir: dir}
	now := time.Now()
	ca, caKey, err := selfSigned("meshnet test CA")
	if err != nil {
		return p, err
	}
	other, otherKey, err := selfSigned("another CA")
	if err != nil {
		return p, err
	}
	server := &x509.Certificate{Subject: pkix.Name{CommonName: ip}, IPAddresses: []net.IP{net.ParseIP(ip), net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"localhost"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	client := &x509.Certificate{Subject: pkix.Name{CommonName: "client"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	expired := &x509.Certificate{Subject: pkix.Name{CommonName: "client"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	errs := []error{
		os.WriteFile(p.File("ca.pem"), pemCert(ca.Raw), 0o644),
		os.WriteFile(p.File("other-ca.pem"), pemCert(other.Raw), 0o644),
		issue(p, "server", server, ca, caKey),
		issue(p, "client", client, ca, caKey),
		issue(p, "expired", expired, ca, caKey),
		issue(p, "other", client, other, otherKey),
	}
	return p, errors.Join(errs...)
}

func selfSigned(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// issue writes NAME.pem and NAME-key.pem: tmpl signed by ca.
func issue(p PKI, name string, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	t := *tmpl
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	t.SerialNumber, t.KeyUsage = serial, x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, &t, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return errors.Join(os.WriteFile(p.File(name+".pem"), pemCert(der), 0o644),
		os.WriteFile(p.File(name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600))
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
