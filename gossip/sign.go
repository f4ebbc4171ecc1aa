package gossip

// Signed records.
//
// memberlist's keyring keeps out whoever lacks the cluster's key, but
// every member holds it, and a message does not say who first sent it:
// records travel through any member. So, with an Identity, a node signs
// each record it writes with the key of its certificate (issued by the
// cluster's CA, naming the node), publishes the certificate in its node
// metadata, and takes a received record only if it carries a valid
// signature of the certificate its writer publishes. A member can then
// write nothing — no record, no tombstone — in another's name.
//
// The signature covers every field but a tombstone's remaining life,
// which each relay lowers. A record whose writer's certificate has not
// arrived yet (its records can overtake its alive message) waits, a
// bounded while, in pending.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Identity is what signs this node's records and checks its peers'.
type Identity struct {
	// Cert is this node's certificate: its common name is the node name,
	// its key ECDSA, and a CA in Roots issued it for client use.
	Cert *x509.Certificate
	// Key is Cert's private key.
	Key crypto.Signer
	// Roots holds the cluster's CA.
	Roots *x509.CertPool
}

// verifyCert checks that cert is valid now for node.
func (id *Identity) verifyCert(cert *x509.Certificate, node string) (*ecdsa.PublicKey, error) {
	if cert.Subject.CommonName != node {
		return nil, fmt.Errorf("the certificate names %.40q, not %.40q", cert.Subject.CommonName, node)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the certificate of %.40q has no ECDSA key", node)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: id.Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the certificate of %.40q: %w", node, err)
	}
	return pub, nil
}

// check checks the identity itself for node.
func (id *Identity) check(node string) error {
	if id.Cert == nil || id.Key == nil || id.Roots == nil {
		return errors.New("an identity needs a certificate, its key and the CA")
	}
	pub, err := id.verifyCert(id.Cert, node)
	if err != nil {
		return err
	}
	if !pub.Equal(id.Key.Public()) {
		return errors.New("the key is not the certificate's")
	}
	return nil
}

// sigDomain starts every signed message, so a signature over a record
// means nothing elsewhere.
const sigDomain = "meshnet gossip record v1\x00"

// maxSigLen bounds a received signature (an ECDSA P-521 one is 139 bytes).
const maxSigLen = 160

// digest is what a record's signature signs.
func digest(r *wireRecord) []byte {
	s := *r
	s.Sig, s.Residual = nil, 0
	h := sha256.Sum256(appendRecord([]byte(sigDomain), &s))
	return h[:]
}

// signing is a Cluster's identity and its peers' certificates.
type signing struct {
	mu    sync.Mutex
	id    *Identity            // nil: records neither signed nor checked
	peers map[string]*peerCert // node name → its published certificate
	wait  []pendingRecord      // records whose writer's certificate is unknown
	kick  chan struct{}        // signalled when a certificate arrives for a waiting record
}

type peerCert struct {
	der []byte
	pub *ecdsa.PublicKey // once checked and valid
	err error            // once checked and invalid
}

type pendingRecord struct {
	rec         wireRecord
	rebroadcast bool
	since       time.Time
	tried       []byte // the certificate its signature failed against (refused once); nil: none was known
}

// Bounds: certificates remembered, records waiting for theirs and for how
// long (push/pull brings a record again later).
const (
	maxPeerCerts = 1 << 12
	maxPending   = 1 << 12
	pendingTTL   = 30 * time.Second
)

func newSigning() *signing {
	return &signing{peers: make(map[string]*peerCert), kick: make(chan struct{}, 1)}
}

// identity is the current identity, nil if none.
func (s *signing) identity() *Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// seal signs r with id (nil when there is no identity).
func (id *Identity) seal(r *wireRecord) []byte {
	if id == nil {
		return nil
	}
	sig, err := id.Key.Sign(rand.Reader, digest(r), crypto.SHA256)
	if err != nil {
		return nil // peers refuse it; a key that cannot sign is a local fault
	}
	return sig
}

// published notes the certificate a member publishes (from memberlist's
// callbacks: no checking here) and reports whether records wait for it.
func (s *signing) published(node string, der []byte) {
	if len(der) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.peers[node]; p != nil && string(p.der) == string(der) {
		return
	}
	if len(s.peers) >= maxPeerCerts {
		for name := range s.peers { // any other; a member's comes back with its next alive message
			if name != node {
				delete(s.peers, name)
				break
			}
		}
	}
	s.peers[node] = &peerCert{der: der}
	for i := range s.wait {
		if s.wait[i].rec.Version.Writer == node {
			select {
			case s.kick <- struct{}{}:
			default:
			}
			return
		}
	}
}

// errNoCert: the writer's certificate is not known yet.
var errNoCert = errors.New("no certificate of the writer yet")

// verify checks r's signature against its writer's certificate, and
// returns that certificate.
func (s *signing) verify(id *Identity, r *wireRecord) ([]byte, error) {
	w := r.Version.Writer
	s.mu.Lock()
	p := s.peers[w]
	if p != nil && p.pub == nil && p.err == nil {
		cert, err := x509.ParseCertificate(p.der)
		if err == nil {
			p.pub, err = id.verifyCert(cert, w)
		}
		p.err = err
	}
	s.mu.Unlock()
	switch {
	case p == nil:
		return nil, errNoCert
	case p.err != nil:
		return p.der, p.err
	case len(r.Sig) == 0:
		return p.der, fmt.Errorf("a record of %.40q without a signature", w)
	case !ecdsa.VerifyASN1(p.pub, digest(r), r.Sig):
		return p.der, fmt.Errorf("a record in %.40q's name not signed by it", w)
	}
	return p.der, nil
}

// park keeps records until their writers' certificates (or new ones)
// arrive, and counts those dropped as too many wait: not refused yet.
func (s *signing) park(recs []pendingRecord, now time.Time) (dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range recs {
		if len(s.wait) >= maxPending {
			if p.tried == nil {
				dropped++
			}
			continue
		}
		p.since = now
		s.wait = append(s.wait, p)
	}
	return dropped
}

// unpark takes the waiting records whose writers' certificates have
// come, and drops those that waited too long.
func (s *signing) unpark(now time.Time) (ready []pendingRecord, expired int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.wait[:0]
	for _, p := range s.wait {
		switch cur := s.peers[p.rec.Version.Writer]; {
		case cur != nil && !bytes.Equal(cur.der, p.tried):
			ready = append(ready, p)
		case now.Sub(p.since) > pendingTTL:
			if p.tried == nil {
				expired++
			}
		default:
			keep = append(keep, p)
		}
	}
	clear(s.wait[len(keep):])
	s.wait = keep
	return ready, expired
}

// SetIdentity sets or replaces this node's identity: from then on its
// records are signed and its peers' must be. It publishes the
// certificate and writes this node's records again, signed.
func (c *Cluster) SetIdentity(id *Identity) error {
	if err := id.check(c.cfg.NodeName); err != nil {
		return fmt.Errorf("checking this node's identity: %w", err)
	}
	cfg := c.cfg
	cfg.Identity = id
	meta, err := encodeMeta(cfg.meta())
	if err != nil {
		return err
	}
	c.sig.mu.Lock()
	same := c.sig.id != nil && c.sig.id.Cert.Equal(id.Cert)
	c.sig.id = id
	c.sig.mu.Unlock()
	if same {
		return nil
	}
	c.meta.Store(&meta)
	c.sig.published(c.cfg.NodeName, id.Cert.Raw)
	c.leaveMu.Lock() // as Leave: not after Close's shutdown
	defer c.leaveMu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.ml.UpdateNode(c.cfg.Timing.TCPTimeout); err != nil {
		c.log.Debug("publishing the certificate", "err", err) // it goes with the next alive message
	}
	c.queueBroadcasts(c.table.reannounce())
	return nil
}
