package ipam

import "time"

// SetClock makes r read the time from now, so tests can advance it
// without sleeping.
func (r *Reclaimer) SetClock(now func() time.Time) { r.now = now }
