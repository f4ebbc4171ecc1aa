package dataplane

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnet/meshnet/datapath"
)

// recordingKernel stands in for the kernel in tests of the reconciler's
// scheduling (what is applied when); the datapath itself is tested on a
// real kernel in package datapath. ApplyNetwork and UpdateNetwork fail for
// the networks in fail.
type recordingKernel struct {
	mu      sync.Mutex
	fail    map[string]error
	calls   []string // "apply ID", "update ID", "remove ID", "all"
	applied map[string]int
}

func (k *recordingKernel) Apply(desired []datapath.Network) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, "all")
	return nil
}

func (k *recordingKernel) ApplyNetwork(n datapath.Network) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, "apply "+n.ID)
	k.applied[n.ID]++
	return k.fail[n.ID]
}

func (k *recordingKernel) UpdateNetwork(n datapath.Network) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, "update "+n.ID)
	k.applied[n.ID]++
	return k.fail[n.ID]
}

func (k *recordingKernel) RemoveNetwork(id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, "remove "+id)
	return nil
}

func (k *recordingKernel) take() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.calls
	k.calls = nil
	slices.Sort(c)
	return c
}

// levelCounter counts log records by level.
type levelCounter struct {
	mu     sync.Mutex
	counts map[slog.Level]int
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.counts[r.Level]++
	h.mu.Unlock()
	return nil
}
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }

func (h *levelCounter) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[l]
}

// TestReconcilerBackOff: a network that keeps failing is retried alone,
// with a growing delay, one warning per distinct error; the others are
// applied whenever they change; recovery ends the back-off.
func TestReconcilerBackOff(t *testing.T) {
	k := &recordingKernel{fail: map[string]error{"bad": errors.New("opening sandbox /run/netns/gone: no such file or directory")},
		applied: map[string]int{}}
	desired := map[string]bool{"good": true, "bad": true}
	var mu sync.Mutex
	want := func(id string) (datapath.Network, bool) {
		mu.Lock()
		defer mu.Unlock()
		return datapath.Network{ID: id}, desired[id]
	}
	all := func() []datapath.Network {
		mu.Lock()
		defer mu.Unlock()
		var out []datapath.Network
		for id := range desired {
			out = append(out, datapath.Network{ID: id})
		}
		return out
	}
	failures := 0
	logs := &levelCounter{counts: map[slog.Level]int{}}
	r := newReconciler(k, want, all, func(string, error) { failures++ }, slog.New(logs))
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }

	// Each pass at time t, after marking both networks dirty, applies:
	var attempts []time.Duration // when "bad" was tried, after the start
	start := now
	for step := 0; now.Sub(start) < 70*time.Second; step++ {
		r.MarkDirty("good")
		r.MarkDirty("bad")
		next, pending := r.pass()
		calls := k.take()
		if !slices.Contains(calls, "update good") {
			t.Fatalf("at %s: good not updated (calls %v)", now.Sub(start), calls)
		}
		// The first attempt is an update, as for good; retries are full.
		if len(attempts) > 0 && slices.Contains(calls, "update bad") {
			t.Fatalf("at %s: a retry of bad was an update, not a full apply (calls %v)", now.Sub(start), calls)
		}
		if slices.Contains(calls, "apply bad") || slices.Contains(calls, "update bad") {
			attempts = append(attempts, now.Sub(start))
		}
		if !pending || !next.After(now) {
			t.Fatalf("at %s: no retry scheduled for bad (next %v, pending %v)", now.Sub(start), next, pending)
		}
		now = now.Add(500 * time.Millisecond) // events twice a second
	}
	// Tried at 0, then 1 s, 2 s, 4 s, 8 s, 16 s, 32 s later (up to the
	// half second the events come at).
	wantAt := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second, 63 * time.Second}
	if len(attempts) != len(wantAt) {
		t.Fatalf("bad tried at %v, want at %v", attempts, wantAt)
	}
	for i := range wantAt {
		if attempts[i] != wantAt[i] {
			t.Fatalf("bad tried at %v, want at %v", attempts, wantAt)
		}
	}
	if got := logs.count(slog.LevelWarn); got != 1 {
		t.Errorf("%d warnings for one unchanging error, want 1", got)
	}
	if failures != len(wantAt) || r.Failing() != 1 {
		t.Errorf("failures told %d, failing %d", failures, r.Failing())
	}

	// Another error is a warning again.
	k.mu.Lock()
	k.fail["bad"] = errors.New("device exists and is not ours")
	k.mu.Unlock()
	now = now.Add(retryMax)
	r.MarkDirty("bad")
	r.pass()
	if got := logs.count(slog.LevelWarn); got != 2 {
		t.Errorf("%d warnings after the error changed, want 2", got)
	}

	// Fixed: applied when due, back-off over, one info line.
	k.mu.Lock()
	delete(k.fail, "bad")
	k.mu.Unlock()
	now = now.Add(retryMax)
	r.MarkDirty("bad")
	if _, pending := r.pass(); pending || r.Failing() != 0 {
		t.Errorf("after recovery: pending %v, failing %d", pending, r.Failing())
	}
	if logs.count(slog.LevelInfo) != 1 {
		t.Errorf("%d info lines on recovery, want 1", logs.count(slog.LevelInfo))
	}

	// A network no longer needed is removed at the next resync.
	mu.Lock()
	delete(desired, "bad")
	mu.Unlock()
	r.MarkAllDirty()
	r.pass()
	if calls := k.take(); !slices.Contains(calls, "remove bad") || !slices.Contains(calls, "apply good") {
		t.Errorf("resync after bad went away: %v", calls)
	}
	if calls := strings.Join(k.take(), ","); calls != "" {
		t.Errorf("left over calls %s", calls)
	}
}

// TestReconcilerRetriesAlone: a failing network is retried when its
// back-off is over even if nothing marks it again.
func TestReconcilerRetriesAlone(t *testing.T) {
	k := &recordingKernel{fail: map[string]error{"n": errors.New("boom")}, applied: map[string]int{}}
	r := newReconciler(k, func(id string) (datapath.Network, bool) { return datapath.Network{ID: id}, true },
		func() []datapath.Network { return nil }, nil, slog.New(slog.DiscardHandler))
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	if err := r.ApplyNow("n"); err == nil {
		t.Fatal("ApplyNow hid the error")
	}
	select {
	case <-r.kick:
	default:
		t.Fatal("a failed ApplyNow did not wake the loop to schedule the retry")
	}
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		next, pending := r.pass() // not due yet: nothing applied
		if !pending || next.Sub(now) != wait || k.applied["n"] != i+1 {
			t.Fatalf("retry %d: next in %s (pending %v), applied %d times", i, next.Sub(now), pending, k.applied["n"])
		}
		now = next
		r.pass() // due: applied again, with nothing marking it
		if k.applied["n"] != i+2 {
			t.Fatalf("retry %d: applied %d times, want %d", i, k.applied["n"], i+2)
		}
	}
}

// TestReconcilerApplyNow: a join's apply reports its network's error and
// takes the network off the dirty list.
func TestReconcilerApplyNow(t *testing.T) {
	k := &recordingKernel{fail: map[string]error{"n": errors.New("boom")}, applied: map[string]int{}}
	r := newReconciler(k, func(id string) (datapath.Network, bool) { return datapath.Network{ID: id}, true },
		func() []datapath.Network { return nil }, nil, slog.New(slog.DiscardHandler))
	r.MarkDirty("n")
	if err := r.ApplyNow("n"); err == nil {
		t.Fatal("ApplyNow hid the error")
	}
	r.pass()
	if k.applied["n"] != 1 {
		t.Errorf("applied %d times, want once", k.applied["n"])
	}
}
