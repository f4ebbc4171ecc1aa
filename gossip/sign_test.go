package gossip

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testCA issues identities the way agent/trust does: an ECDSA CA, client
// certificates whose common name is the node.
type testCA struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	roots *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &testCA{cert: cert, key: key, roots: roots}
}

// identity issues node's identity (trusting this CA).
func (ca *testCA) identity(t testing.TB, node string) *Identity {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: node, Organization: []string{"meshnet"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &Identity{Cert: cert, Key: key, Roots: ca.roots}
}

func withIdentity(id *Identity) func(*Config) { return func(c *Config) { c.Identity = id } }

// forge writes a record in writer's name, signed by id (nil: unsigned).
func forge(id *Identity, writer string, lt uint64, e Endpoint, deleted bool) wireRecord {
	r := wireRecord{Version: version{LTime: lt, Writer: writer}, Deleted: deleted, Endpoint: e}
	if deleted {
		r.Endpoint = Endpoint{Network: e.Network, ID: e.ID}
		r.Residual = time.Minute
	}
	r.Sig = id.seal(&r)
	return r
}

// TestForgedInAnothersName: a member holding the gossip key (and, with
// signing, a certificate of its own) sends, in the owner's name, a
// tombstone of the owner's endpoint and a newer record of it under
// another name. Without identities the receiver takes both (the endpoint
// vanishes, then carries the forged name, until its owner answers); with
// them, it refuses both and counts them, as it does a record with no
// signature, one signed by another CA's certificate in the right name,
// and one whose signed fields were altered.
func TestForgedInAnothersName(t *testing.T) {
	for _, signed := range []bool{false, true} {
		t.Run(fmt.Sprintf("signed=%v", signed), func(t *testing.T) {
			h := newHarness(t)
			ca, other := newTestCA(t), newTestCA(t)
			ids := map[string]*Identity{}
			start := func(name string) *testNode {
				if !signed {
					return h.start(name, withIdentity(nil))
				}
				ids[name] = ca.identity(t, name)
				return h.start(name, withIdentity(ids[name]))
			}
			owner, observer := start("owner"), start("observer")
			h.join(observer, owner)
			h.waitMembers([]*testNode{owner, observer}, 2)
			e := ep("net", "e1", 1)
			e.Node = "owner"
			if err := owner.Put(e); err != nil {
				t.Fatal(err)
			}
			waitConverged(t, []*testNode{observer}, 5*time.Second, func(string) error {
				if got := idsOf(observer.Cluster, "net"); len(got) != 1 {
					return fmt.Errorf("observer holds %v", got)
				}
				return nil
			})
			mallory := ca.identity(t, "mallory")
			e = observer.Endpoints("net")[0]
			renamed := e.clone()
			renamed.Name = "hijacked"
			attacks := map[string]func(lt uint64) wireRecord{
				"tombstone": func(lt uint64) wireRecord { return forge(mallory, "owner", lt, e, true) },
				"rename":    func(lt uint64) wireRecord { return forge(mallory, "owner", lt, renamed, false) },
			}
			if signed {
				attacks["unsigned"] = func(lt uint64) wireRecord { return forge(nil, "owner", lt, renamed, false) }
				attacks["other CA"] = func(lt uint64) wireRecord {
					return forge(other.identity(t, "owner"), "owner", lt, renamed, false)
				}
				attacks["altered"] = func(lt uint64) wireRecord {
					r := forge(ids["owner"], "owner", lt, e, false)
					r.Endpoint.Name = "hijacked"
					return r
				}
			}
			for what, attack := range attacks {
				before := observer.Refusals().Invalid
				r := attack(observer.table.snapshotClock() + 10)
				msg := packRecords([][]byte{encodeRecord(&r)})
				(&delegate{c: observer.Cluster}).NotifyMsg(msg)
				got := observer.Endpoints("net")
				taken := len(got) != 1 || got[0].Name != e.Name
				if signed && taken {
					t.Errorf("%s: the observer took the forged record: %v", what, got)
				}
				if signed && observer.Refusals().Invalid == before {
					t.Errorf("%s: not counted as refused", what)
				}
				if !signed && !taken {
					t.Errorf("%s: without signatures the forged record was expected to be taken (the attack), got %v", what, got)
				}
				// The owner restores its record; wait for it before the next.
				waitConverged(t, []*testNode{observer}, 5*time.Second, func(string) error {
					if got := observer.Endpoints("net"); len(got) != 1 || got[0].Name != e.Name {
						return fmt.Errorf("observer holds %v", got)
					}
					return nil
				})
			}
		})
	}
}

// TestSignedRecordWaitsForCertificate: a record that arrives before its
// writer's certificate waits for it and is then taken; one whose writer
// never publishes a certificate is refused once it waited pendingTTL.
func TestSignedRecordWaitsForCertificate(t *testing.T) {
	h := newHarness(t)
	ca := newTestCA(t)
	obs := h.start("observer", withIdentity(ca.identity(t, "observer")))
	late := ca.identity(t, "late")
	e := ep("net", "e1", 1)
	e.Node, e.VTEP = "late", obs.cfg.VTEP
	r := forge(late, "late", 5, e, false)
	(&delegate{c: obs.Cluster}).NotifyMsg(packRecords([][]byte{encodeRecord(&r)}))
	if got := obs.Endpoints("net"); len(got) != 0 {
		t.Fatalf("taken before the certificate came: %v", got)
	}
	obs.sig.published("late", late.Cert.Raw)
	waitConverged(t, []*testNode{obs}, 5*time.Second, func(string) error {
		if got := obs.Endpoints("net"); len(got) != 1 {
			return fmt.Errorf("observer holds %v", got)
		}
		return nil
	})

	never := ca.identity(t, "never")
	e2 := ep("net", "e2", 2)
	e2.Node, e2.VTEP = "never", obs.cfg.VTEP
	r2 := forge(never, "never", 6, e2, false)
	obs.sig.park([]pendingRecord{{rec: r2, rebroadcast: true}}, time.Now().Add(-pendingTTL-time.Second))
	before := obs.Refusals().Invalid
	waitConverged(t, []*testNode{obs}, 5*time.Second, func(string) error {
		if obs.Refusals().Invalid == before {
			return fmt.Errorf("the stale waiting record is not refused yet")
		}
		return nil
	})
}

// TestSetIdentityPublishesAndResigns: a node given its identity after it
// joined publishes its certificate and writes its records again, signed,
// so peers that check signatures take them.
func TestSetIdentityPublishesAndResigns(t *testing.T) {
	h := newHarness(t)
	ca := newTestCA(t)
	a, b := h.start("a", withIdentity(nil)), h.start("b", withIdentity(nil))
	h.join(b, a)
	h.waitMembers([]*testNode{a, b}, 2)
	e := ep("net", "e1", 1)
	e.Node = "a"
	if err := a.Put(e); err != nil {
		t.Fatal(err)
	}
	if err := b.SetIdentity(ca.identity(t, "a")); err == nil || !strings.Contains(err.Error(), `names "a"`) {
		t.Errorf("b took a's certificate: %v", err)
	}
	if err := b.SetIdentity(ca.identity(t, "b")); err != nil {
		t.Fatal(err)
	}
	if err := a.SetIdentity(ca.identity(t, "a")); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, []*testNode{b}, 5*time.Second, func(string) error {
		got := b.Endpoints("net")
		if len(got) != 1 {
			return fmt.Errorf("b holds %v", got)
		}
		if s := b.table.sigOf("net", "e1"); len(s) == 0 {
			return fmt.Errorf("b holds a's record unsigned")
		}
		return nil
	})
}

// snapshotClock is the table's Lamport clock.
func (t *table) snapshotClock() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.clock
}

// sigOf is the signature held with a record.
func (t *table) sigOf(network, id string) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.getLocked(key{Network: network, ID: id}); e != nil {
		return e.sig
	}
	return nil
}
