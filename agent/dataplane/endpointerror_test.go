package dataplane

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/datapath"
)

// TestEndpointError: a join fails for its own endpoint or for the whole
// network, never for another endpoint's trouble.
func TestEndpointError(t *testing.T) {
	mine := &datapath.EndpointError{Endpoint: "mine", Err: errors.New("creating veth: exists")}
	other := &datapath.EndpointError{Endpoint: "other", Err: fmt.Errorf("%w: /run/netns/x", datapath.ErrSandboxGone)}
	bridge := errors.New("checking mnbr-7: device exists and is not ours")
	wrap := func(errs ...error) error { return fmt.Errorf("network n: %w", errors.Join(errs...)) }
	for _, c := range []struct {
		name string
		err  error
		want []string // parts of the kept message; nil for no error
	}{
		{"none", nil, nil},
		{"another's only", wrap(other), nil},
		{"mine", wrap(other, mine), []string{"endpoint mine: creating veth"}},
		{"the network's", wrap(bridge, other), []string{"mnbr-7"}},
		{"both", wrap(mine, bridge), []string{"endpoint mine", "mnbr-7"}},
		{"not from overlay", errors.New("datapath closed"), []string{"datapath closed"}},
	} {
		got := EndpointError(c.err, "mine")
		if (got == nil) != (c.want == nil) {
			t.Errorf("%s: got %v, want parts %q", c.name, got, c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(got.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, got, w)
			}
		}
		if got != nil && strings.Contains(got.Error(), "other") {
			t.Errorf("%s: %q mentions another endpoint", c.name, got)
		}
	}
}
