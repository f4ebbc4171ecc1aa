package trust

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strings"
)

// tokenPrefix starts every join token; the number is the format's
// version.
const tokenPrefix = "MNTKN-1-"

// secretLen is the length of a token's secret: 20 random bytes in
// base32, 160 bits.
const secretLen = 32

var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Token is a join token: MNTKN-1-FINGERPRINT-SECRET, the CA's fingerprint
// (64 hex digits; the joining host trusts the server that proves it holds
// a certificate of that CA) and the secret that the server asks for.
type Token struct {
	CAHash [32]byte
	Secret string
}

func newToken(ca *x509.Certificate) (Token, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return Token{}, err
	}
	return Token{CAHash: Fingerprint(ca), Secret: secretEncoding.EncodeToString(b)}, nil
}

// String is the token as users copy it.
func (t Token) String() string {
	return tokenPrefix + hex.EncodeToString(t.CAHash[:]) + "-" + t.Secret
}

// ParseToken reads a join token; the error is one sentence.
func ParseToken(s string) (Token, error) {
	bad := errors.New("it is not a join token (MNTKN-1-…; print one with `agentctl cluster join-token` on the host serving the embedded store)")
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	if !ok {
		return Token{}, bad
	}
	hash, secret, ok := strings.Cut(rest, "-")
	if !ok || len(hash) != 64 || len(secret) != secretLen {
		return Token{}, bad
	}
	var t Token
	if n, err := hex.Decode(t.CAHash[:], []byte(hash)); err != nil || n != 32 {
		return Token{}, bad
	}
	if _, err := secretEncoding.DecodeString(secret); err != nil {
		return Token{}, bad
	}
	t.Secret = secret
	return t, nil
}
