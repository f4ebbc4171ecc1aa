package trust

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/meshnet/meshnet/internal/names"
)

// JoinPort is where the host serving the embedded store answers joins,
// on its advertise address (the store is at 2379).
const JoinPort = 2378

// maxJoinBody bounds a join request and answer.
const maxJoinBody = 64 << 10

// refusalDelay slows down guessing: a wrong secret is answered after it,
// one at a time.
const refusalDelay = 250 * time.Millisecond

type joinRequest struct {
	Node   string `json:"node"`
	Secret string `json:"secret"`
	CSR    string `json:"csr"` // PEM
}

type joinAnswer struct {
	CA      string `json:"ca,omitempty"`   // PEM
	Cert    string `json:"cert,omitempty"` // PEM
	Message string `json:"message,omitempty"`
}

// JoinServer serves joins until closed.
type JoinServer struct {
	srv  *http.Server
	addr string
	done chan struct{}
}

// Addr is where it listens, HOST:PORT.
func (s *JoinServer) Addr() string { return s.addr }

// ServeJoin answers joins on addr (HOST:PORT) over TLS with the store's
// server certificate.
func (a *Authority) ServeJoin(addr string, log *slog.Logger) (*JoinServer, error) {
	certFile, keyFile := a.ServerFiles()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serving joins: %w", err)
	}
	mux := http.NewServeMux()
	var refuse sync.Mutex
	mux.HandleFunc("POST /v1/join", func(w http.ResponseWriter, r *http.Request) {
		ans, status := a.join(r, &refuse)
		if status != http.StatusOK {
			log.Warn("join refused", "from", r.RemoteAddr, "reason", ans.Message)
		} else {
			log.Info("host joined the cluster", "from", r.RemoteAddr)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(ans)
	})
	s := &JoinServer{addr: ln.Addr().String(), done: make(chan struct{}), srv: &http.Server{Handler: mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13},
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxHeaderBytes: 16 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}}
	go func() {
		defer close(s.done)
		s.srv.Serve(tls.NewListener(ln, s.srv.TLSConfig))
	}()
	return s, nil
}

// Close stops serving joins.
func (s *JoinServer) Close() {
	s.srv.Close()
	<-s.done
}

func (a *Authority) join(r *http.Request, refuse *sync.Mutex) (joinAnswer, int) {
	var req joinRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxJoinBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return joinAnswer{Message: "the join request is not valid JSON"}, http.StatusBadRequest
	}
	if !a.checkSecret(req.Secret) {
		refuse.Lock()
		time.Sleep(refusalDelay)
		refuse.Unlock()
		return joinAnswer{Message: "the join token is not this cluster's current one (print it with `agentctl cluster join-token` on the host serving the store)"}, http.StatusForbidden
	}
	if !names.Valid(req.Node, 64) {
		return joinAnswer{Message: fmt.Sprintf("node name %q is not valid: %s", req.Node, names.FirstBad(req.Node))}, http.StatusBadRequest
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return joinAnswer{Message: "the join request holds no certificate request"}, http.StatusBadRequest
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		return joinAnswer{Message: "the certificate request is malformed or not signed by its key"}, http.StatusBadRequest
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return joinAnswer{Message: "the certificate request's key is not ECDSA"}, http.StatusBadRequest
	}
	der, err := a.sign(req.Node, pub, false, nil)
	if err != nil {
		return joinAnswer{Message: "cannot issue the certificate: " + err.Error()}, http.StatusInternalServerError
	}
	return joinAnswer{CA: string(a.caPEM), Cert: string(encodeCert(der))}, http.StatusOK
}

// Joined reports whether dir holds a client certificate of the CA tok
// names (of any CA when tok is nil), valid now.
func Joined(dir Dir, tok *Token) bool {
	ca, err := readCert(dir.Path(CAFile))
	if err != nil || (tok != nil && Fingerprint(ca) != tok.CAHash) {
		return false
	}
	cert, _, err := loadPair(dir.Path(CertFile), dir.Path(KeyFile))
	if err != nil || time.Now().After(cert.NotAfter) {
		return false
	}
	return cert.CheckSignatureFrom(ca) == nil
}

// JoinOptions say whom to ask.
type JoinOptions struct {
	Addr  string // HOST:PORT of the join service
	Token Token
	Node  string
	// Dial opens the connection; nil means the default dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Join asks the host at o.Addr for a client certificate with the token
// and writes it, its key and the CA into dir. It trusts the server only
// if the server proves it holds a certificate of the token's CA.
func Join(ctx context.Context, dir Dir, o JoinOptions) error {
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return fmt.Errorf("making the trust directory: %w", err)
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return err
	}
	key, err := newKey()
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: o.Node}}, key)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(joinRequest{Node: o.Node, Secret: o.Token.Secret,
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	tr := &http.Transport{DialContext: o.Dial, TLSClientConfig: pinned(o.Token), ForceAttemptHTTP2: false}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+o.Addr+"/v1/join", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("joining through %s: %w", o.Addr, err)
	}
	defer resp.Body.Close()
	var ans joinAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJoinBody)).Decode(&ans); err != nil {
		return fmt.Errorf("joining through %s: the answer is not a join answer", o.Addr)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s refused to join this host: %s", o.Addr, ans.Message)
	}
	certPEM := []byte(ans.Cert)
	cb, _ := pem.Decode(certPEM)
	ab, _ := pem.Decode([]byte(ans.CA))
	if cb == nil || ab == nil {
		return fmt.Errorf("joining through %s: the answer holds no certificate", o.Addr)
	}
	cert, err1 := x509.ParseCertificate(cb.Bytes)
	ca, err2 := x509.ParseCertificate(ab.Bytes)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("joining through %s: %w", o.Addr, err)
	}
	if Fingerprint(ca) != o.Token.CAHash || cert.CheckSignatureFrom(ca) != nil || !key.PublicKey.Equal(cert.PublicKey) {
		return fmt.Errorf("joining through %s: the certificate is not of the token's CA or not for this host's key", o.Addr)
	}
	if err := writePair(dir, CertFile, KeyFile, encodeCert(cert.Raw), key); err != nil {
		return err
	}
	return writeFile(dir.Path(CAFile), encodeCert(ca.Raw))
}

// pinned is a TLS client configuration that trusts a server whose chain
// holds the token's CA and whose certificate is a server's of that CA.
// The name the host was reached by is not checked: the CA is pinned and
// the cluster's own (its other certificates are clients'), and hosts
// reach the store by whatever name or address their network gives it.
func pinned(tok Token) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below, against the pinned CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server shows no certificate")
			}
			for _, c := range cs.PeerCertificates {
				if Fingerprint(c) != tok.CAHash {
					continue
				}
				roots := x509.NewCertPool()
				roots.AddCert(c)
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
				return err
			}
			return errors.New("the server does not hold the join token's CA: is this the host serving the cluster's store, and the token its current one?")
		},
	}
}

// NodeIdentity is this host's certificate, its key and the cluster's CA,
// from dir: what signs this host's gossip records (gossip.Identity). It
// fails if the host has not joined, and says so if the certificate names
// another node than node.
func NodeIdentity(dir Dir, node string) (*x509.Certificate, *ecdsa.PrivateKey, *x509.CertPool, error) {
	if !Joined(dir, nil) {
		return nil, nil, nil, fmt.Errorf("no valid certificate of the cluster's CA in %s", dir)
	}
	ca, err := readCert(dir.Path(CAFile))
	if err != nil {
		return nil, nil, nil, err
	}
	cert, key, err := loadPair(dir.Path(CertFile), dir.Path(KeyFile))
	if err != nil {
		return nil, nil, nil, err
	}
	if cert.Subject.CommonName != node {
		return nil, nil, nil, fmt.Errorf("this host's certificate %s names node %q, not %q: remove %s and %s and join again with a token",
			dir.Path(CertFile), cert.Subject.CommonName, node, dir.Path(CertFile), dir.Path(KeyFile))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return cert, key, roots, nil
}
