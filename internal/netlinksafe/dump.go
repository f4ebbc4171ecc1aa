// Package netlinksafe repeats netlink dumps that the kernel interrupted.
package netlinksafe

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// attempts bounds the retries of a netlink dump that the kernel reports as
// interrupted (NLM_F_DUMP_INTR: the table changed while it was read).
const attempts = 5

// Dump calls dump until it returns a consistent result, at most five
// times, and names what it lists in its errors. An interrupted dump may be
// incomplete, so its result is never returned: nothing is ever deleted
// because a dump missed it.
func Dump[T any](what string, dump func() (T, error)) (T, error) {
	var (
		zero T
		err  error
	)
	for range attempts {
		var res T
		if res, err = dump(); err == nil {
			return res, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return zero, fmt.Errorf("listing %s: %w", what, err)
		}
	}
	return zero, fmt.Errorf("listing %s: %d attempts: %w", what, attempts, err)
}
