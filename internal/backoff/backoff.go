// Package backoff is the capped exponential delay used by meshnet's retry
// loops (store watches, lease keep-alives, reconnects).
package backoff

import (
	"context"
	"time"
)

// Backoff doubles its delay after every Wait, from Min up to Max. It is not
// safe for concurrent use; each retry loop owns one.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// New returns a Backoff from min to max.
func New(min, max time.Duration) *Backoff { return &Backoff{Min: min, Max: max} }

// Reset starts the delay again from Min, after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Wait sleeps for the current delay, or until ctx is done, and grows the
// delay. It reports whether ctx is still live.
func (b *Backoff) Wait(ctx context.Context) bool {
	if b.cur == 0 {
		b.cur = b.Min
	}
	t := time.NewTimer(b.cur)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	if b.cur *= 2; b.cur > b.Max {
		b.cur = b.Max
	}
	return true
}
