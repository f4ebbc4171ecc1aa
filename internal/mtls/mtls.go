// Package mtls loads the files of mutual TLS for meshagent's API on
// tcp://, as dockerd and the docker CLI name them: a CA (tlscacert), which
// signs the other side's certificate, and this side's certificate and key
// (tlscert, tlskey). Every error names the file.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// Files are the three PEM files.
type Files struct {
	CA, Cert, Key string
}

// Server is the agent's side: clients must show a certificate of the CA.
func (f Files) Server() (*tls.Config, error) {
	pool, pair, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}, nil
}

// Client is agentctl's side: the agent must show a certificate of the CA
// naming the host it is reached at.
func (f Files) Client() (*tls.Config, error) {
	pool, pair, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, RootCAs: pool}, nil
}

func (f Files) load() (*x509.CertPool, tls.Certificate, error) {
	for _, p := range []struct{ flag, path string }{{"tlscacert", f.CA}, {"tlscert", f.Cert}, {"tlskey", f.Key}} {
		if p.path == "" {
			return nil, tls.Certificate{}, fmt.Errorf("%s is not set", p.flag)
		}
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("cannot read tlscacert %s: %w", f.CA, errors.Unwrap(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, tls.Certificate{}, fmt.Errorf("tlscacert %s holds no PEM certificate", f.CA)
	}
	for _, p := range []struct{ flag, path string }{{"tlscert", f.Cert}, {"tlskey", f.Key}} {
		if _, err := os.Stat(p.path); err != nil {
			return nil, tls.Certificate{}, fmt.Errorf("cannot read %s %s: %w", p.flag, p.path, errors.Unwrap(err))
		}
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("tlscert %s and tlskey %s are not a certificate and its key", f.Cert, f.Key)
	}
	leaf := pair.Leaf
	if leaf == nil {
		leaf, _ = x509.ParseCertificate(pair.Certificate[0])
	}
	if leaf != nil {
		if now := time.Now(); now.After(leaf.NotAfter) {
			return nil, tls.Certificate{}, fmt.Errorf("tlscert %s expired on %s", f.Cert, leaf.NotAfter.Format(time.DateOnly))
		} else if now.Before(leaf.NotBefore) {
			return nil, tls.Certificate{}, fmt.Errorf("tlscert %s is not valid before %s", f.Cert, leaf.NotBefore.Format(time.DateOnly))
		}
	}
	return pool, pair, nil
}
