// Package ids makes the ids of networks, sandboxes and endpoints, and
// finds a record by what a user calls it: the one lookup of them all.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/meshnet/meshnet/agent/service"
)

// Find looks a record of m (keyed by id) up by full id, then name (as
// name says it; nil for records without one), then unique id prefix, as
// Docker does. Its errors are the service's: invalid (nothing given, an
// ambiguous prefix) or not found, naming what ("network", "sandbox").
func Find[T any](m map[string]T, ref, what string, name func(T) string) (T, error) {
	var zero T
	if ref == "" {
		return zero, service.Invalidf("no %s given", what)
	}
	if v, ok := m[ref]; ok {
		return v, nil
	}
	if name != nil {
		for _, v := range m {
			if name(v) == ref {
				return v, nil
			}
		}
	}
	var match []T
	for id, v := range m {
		if strings.HasPrefix(id, ref) {
			match = append(match, v)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return zero, service.NotFoundf("%s %s not found", what, ref)
	}
	return zero, service.Invalidf("%s id prefix %s is ambiguous: %d %ss match", what, ref, len(match), what)
}

// New returns 64 random hex digits, like Docker's ids.
func New() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
