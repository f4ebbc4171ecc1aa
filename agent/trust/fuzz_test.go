package trust

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// FuzzJoinRequest: whatever body a stranger posts to the join service,
// the answer is a status and a JSON message, never a panic; only a
// request with the current secret and a well-formed, self-signed request
// for a valid node name gets a certificate.
func FuzzJoinRequest(f *testing.F) {
	a, err := OpenAuthority(Dir(f.TempDir()), "n1", netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		f.Fatal(err)
	}
	key, _ := newKey()
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "n2"}}, key)
	csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	good, _ := json.Marshal(joinRequest{Node: "n2", Secret: a.Token().Secret, CSR: csrPEM})
	f.Add(string(good))
	f.Add(`{"node":"n2","secret":"` + a.Token().Secret + `","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`)
	f.Add(`{"node":"../x","secret":"` + a.Token().Secret + `"}`)
	f.Add(`{"secret":"wrong"}`)
	f.Add(`[`)
	f.Add(strings.Repeat(`{"node":`, 1000))
	var refuse sync.Mutex
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/join", strings.NewReader(body))
		ans, status := a.join(r, &refuse)
		if status == http.StatusOK {
			var req joinRequest
			if json.Unmarshal([]byte(body), &req) != nil || req.Secret != a.Token().Secret || ans.Cert == "" {
				t.Fatalf("a certificate for %.80q", body)
			}
			return
		}
		if ans.Message == "" || strings.Contains(ans.Message, "\n") {
			t.Fatalf("status %d with message %q", status, ans.Message)
		}
	})
}

// FuzzDecodeKeys: a keyring record from the store is taken only as 1–8
// keys of AES sizes, never a panic.
func FuzzDecodeKeys(f *testing.F) {
	f.Add(encodeKeys([][]byte{NewGossipKey()}))
	f.Add([]byte(`{"keys":["eA=="]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := decodeKeys(b)
		if err != nil {
			return
		}
		if len(keys) == 0 || len(keys) > maxKeys {
			t.Fatalf("%d keys", len(keys))
		}
		for _, k := range keys {
			if len(k) != 16 && len(k) != 24 && len(k) != 32 {
				t.Fatalf("a key of %d bytes", len(k))
			}
		}
	})
}
