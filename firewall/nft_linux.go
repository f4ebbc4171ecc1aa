package firewall

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Firewall programs meshnet's table in one network namespace. Its methods
// are safe for concurrent use; they are serialised.
type Firewall struct {
	mu     sync.Mutex
	ns     netns.NsHandle // guarded by mu; the namespace (None: the caller's)
	closed bool           // guarded by mu
	writes int            // guarded by mu; transactions sent, for tests

	// The tables last written or found right, and when the kernel was
	// last read: an Apply of the same tables within recheck trusts them
	// and reads nothing (the kernel read costs ~10 ms with 1,000 ports).
	last    map[string]string // guarded by mu; family → fingerprint
	checked time.Time         // guarded by mu
	recheck time.Duration

	dockerChecked time.Time // guarded by mu; AllowInDockerUser's last look
}

// Recheck is how long Apply trusts that the kernel still holds what it
// wrote; after that it reads the tables again and repairs drift. It is
// shorter than the agent's resync (30 s), so that every resync reads.
const Recheck = 25 * time.Second

// New returns a Firewall for the namespace hostNS (netns.None() for the
// caller's own). The handle may be closed once New returns.
func New(hostNS netns.NsHandle) (*Firewall, error) {
	f := &Firewall{ns: netns.None(), recheck: Recheck}
	if hostNS.IsOpen() {
		fd, err := unix.Dup(int(hostNS))
		if err != nil {
			return nil, fmt.Errorf("keeping the host namespace: %w", err)
		}
		f.ns = netns.NsHandle(fd)
	}
	return f, nil
}

// Close releases the namespace handle. It leaves the rules in place (they
// keep working while the agent is down) and is idempotent.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		if f.ns.IsOpen() {
			f.ns.Close()
		}
	}
	return nil
}

var errClosed = errors.New("firewall closed")

func (f *Firewall) conn() (*nftables.Conn, error) {
	if f.closed {
		return nil, errClosed
	}
	var opts []nftables.ConnOption
	if f.ns.IsOpen() {
		opts = append(opts, nftables.WithNetNSFd(int(f.ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening nftables: %w", err)
	}
	return c, nil
}

// families are the tables meshnet keeps: one per family, both called
// TableName.
var families = []struct {
	name   string
	family nftables.TableFamily
}{{"inet", nftables.TableFamilyINet}, {"bridge", nftables.TableFamilyBridge}}

// Apply makes meshnet's tables exactly the ones the ruleset asks for
// (none for no networks; the bridge one only for icc off). Tables that
// differ are replaced, in one transaction. See the package comment.
func (f *Firewall) Apply(rs Ruleset) error {
	if err := rs.validate(); err != nil {
		return err
	}
	inet, bridge := render(rs)
	return f.apply(map[string]*table{"inet": inet, "bridge": bridge})
}

// Remove deletes meshnet's tables, if there are any.
// Equivalent to: `nft delete table inet meshnet; nft delete table bridge meshnet`.
func (f *Firewall) Remove() error {
	return f.apply(map[string]*table{})
}

func (f *Firewall) apply(want map[string]*table) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fps := map[string]string{}
	for _, fam := range families {
		if t := want[fam.name]; t != nil {
			fps[fam.name] = fingerprint(fam.family, t)
		}
	}
	if maps.Equal(fps, f.last) && time.Since(f.checked) < f.recheck {
		return nil
	}
	c, err := f.conn()
	if err != nil {
		return err
	}
	f.last, f.checked = nil, time.Time{} // known again only once written or found right
	changed := false
	for _, fam := range families {
		have, exists, err := readTable(c, fam.family)
		if err != nil {
			return err
		}
		t := want[fam.name]
		switch {
		case t == nil && !exists, t != nil && exists && have == fps[fam.name]:
			continue
		case exists:
			c.DelTable(&nftables.Table{Family: fam.family, Name: TableName})
		}
		if t != nil {
			if err := build(c, fam.family, t); err != nil {
				return err
			}
		}
		changed = true
	}
	if changed {
		f.writes++
		if err := c.Flush(); err != nil {
			return fmt.Errorf("writing meshnet's nftables tables: %w", err)
		}
	}
	f.last, f.checked = fps, time.Now()
	return nil
}

// Writes counts the transactions sent to the kernel.
func (f *Firewall) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}
