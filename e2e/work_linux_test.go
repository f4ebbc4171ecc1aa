package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/cluster"
)

// counters reads the agent's work counters from /metrics.
func counters(t *testing.T, ctx context.Context, h *cluster.Host) (applies, saves int) {
	t.Helper()
	code, body, err := h.API(ctx, "GET", "/metrics", nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics on %s: %d %v", h.Node, code, err)
	}
	value := func(name string) int {
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("metric %s: %q", name, v)
				}
				return int(f)
			}
		}
		t.Fatalf("no metric %s on %s", name, h.Node)
		return 0
	}
	return value("meshnet_datapath_applies_total"), value("meshnet_state_saves_total")
}

// Nothing is done twice: creating a network saves the state once and
// programs nothing (it has no endpoint here yet) — the echo of the record
// from the store's watch changes nothing; creating a sandbox on it
// programs the network once and saves once — the echo of its own
// endpoint from gossip changes nothing; removing it, the same.
func TestNoWorkDoneTwice(t *testing.T) {
	c := newCluster(t, cluster.StoreEmbedded, 1)
	ctx := testCtx(t)
	n1 := c.Host(0)
	settle := func() { time.Sleep(1500 * time.Millisecond) } // room for the echoes to come back
	settle()
	step := func(what string, wantApplies, wantSaves int, args ...string) {
		t.Helper()
		a0, s0 := counters(t, ctx, n1)
		ctl(t, n1, args...)
		settle()
		a1, s1 := counters(t, ctx, n1)
		if a1-a0 != wantApplies || s1-s0 != wantSaves {
			t.Errorf("%s: %d datapath applies and %d state saves, want %d and %d", what, a1-a0, s1-s0, wantApplies, wantSaves)
		}
	}
	step("network create", 0, 1, "network", "create", "-d", "overlay", "multi")
	s1 := c.Name("s1")
	step("sandbox create", 1, 1, "sandbox", "create", "--net", "multi", s1)
	step("sandbox rm", 1, 1, "sandbox", "rm", s1)
	step("network rm", 0, 1, "network", "rm", "multi")
}
