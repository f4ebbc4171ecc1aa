package dataplane

// The reconciler owns the datapath: one goroutine turns the agent's view
// into kernel state, network by network.
//
//   - Changes mark networks dirty (a gossip event of another host's
//     endpoint, a network record that changed); the loop applies each
//     dirty network once however many marks it got, with the view of the
//     moment.
//   - Joins and leaves apply their network at once (ApplyNow): the caller
//     waits for the interface.
//   - A network whose programming fails is retried with back-off (one
//     second, doubling, up to retryMax), alone: the other networks go on.
//     Its first failure is a warning, repeats of the same error are debug
//     lines, recovery is an info line.
//   - Changes are applied as updates (UpdateNetwork): endpoints programmed
//     before and still intact on the host's side are not re-checked
//     inside their namespaces, so a join costs the same on a full host.
//   - Every resyncInterval all networks are applied again in full
//     (ApplyNetwork, repairing drift: somebody deleting an FDB entry or a
//     sandbox's address by hand), failing ones only when their back-off
//     is due, and retries are full too. At start, one full Apply also
//     removes the devices of networks this host no longer has.

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnet/meshnet/datapath"
)

const (
	resyncInterval = 30 * time.Second
	retryMin       = time.Second
	retryMax       = 2 * time.Minute
)

// Kernel is what the reconciler programs (a *datapath.Datapath).
type Kernel interface {
	Apply(desired []datapath.Network) error
	ApplyNetwork(n datapath.Network) error
	UpdateNetwork(n datapath.Network) error
	RemoveNetwork(id string) error
}

// reconciler applies desired networks to the kernel. Its methods are
// safe for concurrent use; MarkDirty never blocks.
type reconciler struct {
	k Kernel
	// desired returns a network's desired state now; ok false means the
	// host needs nothing of it. all lists every network this host needs.
	desired func(id string) (n datapath.Network, ok bool)
	all     func() []datapath.Network
	// failed is told of every failure (it must not block).
	failed func(id string, err error)
	// before, if set, runs ahead of every batch of kernel writes (the
	// packet filter, which must isolate a bridge before it forwards).
	before func()
	log    *slog.Logger
	now    func() time.Time

	kick chan struct{}

	mu        sync.Mutex // guards dirty, resyncAll and beforeDue
	dirty     map[string]bool
	resyncAll bool
	beforeDue bool // before must run in the next pass, even with nothing dirty

	applyMu sync.Mutex          // one kernel write at a time; guards the fields below
	failing map[string]*failure // networks whose last apply failed
	applied map[string]bool     // networks applied since start, so that one no longer needed is removed

	nFailing atomic.Int32
	applies  atomic.Int64 // kernel writes: Apply, ApplyNetwork and RemoveNetwork calls
}

// failure is a network's back-off state.
type failure struct {
	attempts int
	next     time.Time
	last     string
}

func newReconciler(k Kernel, desired func(string) (datapath.Network, bool), all func() []datapath.Network,
	failed func(string, error), log *slog.Logger) *reconciler {
	return &reconciler{k: k, desired: desired, all: all, failed: failed, log: log, now: time.Now,
		kick: make(chan struct{}, 1), dirty: map[string]bool{}, failing: map[string]*failure{}, applied: map[string]bool{}}
}

// MarkDirty asks for the network to be applied again soon.
func (r *reconciler) MarkDirty(id string) {
	r.mu.Lock()
	r.dirty[id] = true
	r.mu.Unlock()
	r.wake()
}

// MarkAllDirty asks for every network to be applied again soon.
func (r *reconciler) MarkAllDirty() {
	r.mu.Lock()
	r.resyncAll = true
	r.mu.Unlock()
	r.wake()
}

// MarkBeforeDue asks for before (the packet filter) to run in the next
// pass, whatever is dirty.
func (r *reconciler) MarkBeforeDue() {
	r.mu.Lock()
	r.beforeDue = true
	r.mu.Unlock()
	r.wake()
}

func (r *reconciler) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Applies counts the reconciler's calls into the kernel.
func (r *reconciler) Applies() int64 { return r.applies.Load() }

// Failing is the number of networks in back-off.
func (r *reconciler) Failing() int { return int(r.nFailing.Load()) }

// ApplyNow applies one network at once and returns its error (the join
// or leave that asked fails with it). It records the outcome like the
// loop does.
func (r *reconciler) ApplyNow(id string) error {
	r.mu.Lock()
	delete(r.dirty, id) // applied now with the newest view
	r.mu.Unlock()
	r.applyMu.Lock()
	r.runBefore()
	err := r.applyLocked(id, r.failing[id] == nil)
	r.applyMu.Unlock()
	if err != nil {
		r.wake() // the loop schedules the retry
	}
	return err
}

// Run applies everything once, then dirty networks as they come, until
// ctx ends.
func (r *reconciler) Run(ctx context.Context) {
	r.applyMu.Lock()
	r.runBefore()
	desired := r.all()
	r.applies.Add(1)
	if err := r.k.Apply(desired); err != nil {
		// Which network failed is found out one by one, with back-off.
		r.log.Debug("programming the datapath at start", "err", err)
		r.MarkAllDirty()
	}
	for _, n := range desired {
		r.applied[n.ID] = true
	}
	r.applyMu.Unlock()

	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-r.kick:
		case <-retry.C:
		case <-resync.C:
			r.MarkAllDirty()
			continue
		case <-ctx.Done():
			return
		}
		if next, ok := r.pass(); ok {
			retry.Reset(max(next.Sub(r.now()), 10*time.Millisecond))
		}
	}
}

// pass applies the dirty networks whose back-off is not pending (those
// stay dirty) and the failing ones whose back-off is over. It returns when
// the earliest failing network is due again.
func (r *reconciler) pass() (next time.Time, pending bool) {
	r.mu.Lock()
	ids := r.dirty
	r.dirty = map[string]bool{}
	all, before := r.resyncAll, r.beforeDue
	r.resyncAll, r.beforeDue = false, false
	r.mu.Unlock()

	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	full := map[string]bool{} // the others are updates
	if all {
		for _, n := range r.all() {
			ids[n.ID], full[n.ID] = true, true
		}
		for id := range r.applied {
			ids[id], full[id] = true, true
		}
	}
	now := r.now()
	for id, f := range r.failing {
		if !now.Before(f.next) {
			ids[id], full[id] = true, true
		}
	}
	if len(ids) > 0 || before {
		r.runBefore()
	}
	var later []string
	for id := range ids {
		if f := r.failing[id]; f != nil && now.Before(f.next) {
			later = append(later, id)
			continue
		}
		r.applyLocked(id, !full[id])
	}
	for _, f := range r.failing {
		if !pending || f.next.Before(next) {
			next, pending = f.next, true
		}
	}
	if len(later) > 0 {
		r.mu.Lock()
		for _, id := range later {
			r.dirty[id] = true
		}
		r.mu.Unlock()
	}
	return next, pending
}

func (r *reconciler) runBefore() {
	if r.before != nil {
		r.before()
	}
}

// applyLocked applies one network, as an update or in full, and records
// the outcome. The caller holds applyMu.
func (r *reconciler) applyLocked(id string, update bool) error {
	n, ok := r.desired(id)
	var err error
	switch {
	case ok && update:
		r.applies.Add(1)
		err = r.k.UpdateNetwork(n)
		r.applied[id] = true
	case ok:
		r.applies.Add(1)
		err = r.k.ApplyNetwork(n)
		r.applied[id] = true
	case r.applied[id] || r.failing[id] != nil:
		r.applies.Add(1)
		if err = r.k.RemoveNetwork(id); err == nil {
			delete(r.applied, id)
		}
	default:
		// Never applied since start (the start's full Apply removed
		// what was left): nothing to remove.
	}
	r.record(id, err)
	return err
}

// record keeps a network's back-off state and logs its changes.
func (r *reconciler) record(id string, err error) {
	f := r.failing[id]
	if err == nil {
		if f != nil {
			r.log.Info("network programmed again", "network", id, "after", f.attempts)
			delete(r.failing, id)
			r.nFailing.Store(int32(len(r.failing)))
		}
		return
	}
	if f == nil {
		f = &failure{}
		r.failing[id] = f
		r.nFailing.Store(int32(len(r.failing)))
	}
	f.attempts++
	delay := retryMin << min(f.attempts-1, 16)
	if delay > retryMax {
		delay = retryMax
	}
	f.next = r.now().Add(delay)
	if msg := err.Error(); msg != f.last {
		r.log.Warn("programming a network failed; retrying with back-off", "network", id, "retry-in", delay, "err", err)
		f.last = msg
	} else {
		r.log.Debug("programming a network failed again", "network", id, "attempts", f.attempts, "retry-in", delay)
	}
	if r.failed != nil {
		r.failed(id, err)
	}
}
