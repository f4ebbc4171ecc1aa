package kvstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"
)

// CheckTLS makes a TLS handshake with the store's first reachable
// endpoint, as the backends will, so that a certificate mistake is one
// sentence at start rather than a store that "does not answer": a server
// certificate the ca file does not vouch for, a client certificate the
// store refuses, a store that does not speak TLS. An endpoint that cannot
// be reached is no error (the store may be down; the agent waits for it).
// Without TLS options it does nothing.
func CheckTLS(ctx context.Context, c Config) error {
	tc, err := c.TLSConfig()
	if err != nil || tc == nil {
		return err
	}
	dial := c.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	timeout := min(c.Timeout, 5*time.Second)
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout) // all endpoints together: start waits no longer
	defer cancel()
	for _, ep := range c.Endpoints {
		host, _, err := net.SplitHostPort(ep)
		if err != nil {
			continue
		}
		raw, err := dial(ctx, "tcp", ep)
		if err != nil {
			continue // down: not a certificate matter
		}
		deadline, _ := ctx.Deadline()
		err = handshake(raw, tc, host, time.Until(deadline))
		raw.Close()
		return describeTLS(err, ep, c)
	}
	return nil
}

// handshake runs a client handshake and, since under TLS 1.3 a refused
// client certificate shows only after it, waits briefly for an alert.
func handshake(raw net.Conn, tc *tls.Config, host string, timeout time.Duration) error {
	cfg := tc.Clone()
	cfg.ServerName = host
	conn := tls.Client(raw, cfg)
	conn.SetDeadline(time.Now().Add(timeout))
	if err := conn.Handshake(); err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := conn.Read(make([]byte, 1))
	if remoteAlert(err) {
		return err
	}
	return nil
}

// remoteAlert reports whether err is a TLS alert the server sent.
func remoteAlert(err error) bool {
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "remote error"
}

// describeTLS says what a handshake's error means for the configuration.
func describeTLS(err error, ep string, c Config) error {
	if err == nil {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var record tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &hostname):
		ca := "the system's CAs"
		if c.CAFile != "" {
			ca = "cluster-store-opt ca " + c.CAFile
		}
		return fmt.Errorf("the cluster store at %s presents a certificate that %s does not vouch for: %v", ep, ca, err)
	case errors.As(err, &record):
		return fmt.Errorf("the cluster store at %s does not speak TLS, but cluster-store-opt gives TLS files", ep)
	}
	if remoteAlert(err) {
		cert := "no client certificate (cluster-store-opt cert and key)"
		if c.CertFile != "" {
			cert = "the client certificate cluster-store-opt cert " + c.CertFile
		}
		return fmt.Errorf("the cluster store at %s refuses %s: %v", ep, cert, err)
	}
	return nil // a network error: the store's business, not the files'
}
