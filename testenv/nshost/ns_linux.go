package nshost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/meshnet/meshnet/internal/netnsdir"
	"github.com/meshnet/meshnet/internal/nsthread"
)

// Prefix returns "mnt-TAG-XXXXXX" with six random hex digits: a namespace
// name prefix unique to one test. Keep TAG short (namespace names are file
// names, but device names derived from them are not).
func Prefix(tag string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "mnt-" + tag + "-" + hex.EncodeToString(b[:])
}

// NS is a named network namespace that this package created.
type NS struct {
	Name   string
	handle netns.NsHandle
	// borrowed is set for a namespace opened with OpenNS: Close leaves it.
	borrowed bool
}

// NewNS creates the named namespace /run/netns/NAME with its loopback up.
// Equivalent to: `ip netns add NAME; ip -n NAME link set lo up`.
func NewNS(name string) (*NS, error) {
	// As ip netns does: /run/netns is a shared mount point before anything
	// is mounted in it. Made later (by the agent), it would hide the
	// namespaces mounted before it, which could then not be deleted.
	if err := netnsdir.Prepare(); err != nil {
		return nil, err
	}
	var h netns.NsHandle
	err := nsthread.Isolated(func() error {
		var err error
		h, err = netns.NewNamed(name) // switches this thread into it
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	ns := &NS{Name: name, handle: h}
	nl, err := ns.Netlink()
	if err == nil {
		defer nl.Close()
		var lo netlink.Link
		if lo, err = nl.LinkByName("lo"); err == nil {
			err = nl.LinkSetUp(lo)
		}
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("setting lo up in %s: %w", name, err), ns.Close())
	}
	return ns, nil
}

// Path returns the namespace's file, /run/netns/NAME.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// Handle returns the namespace's handle; it stays owned by n.
func (n *NS) Handle() netns.NsHandle { return n.handle }

// Netlink opens a netlink socket in the namespace; the caller closes it.
func (n *NS) Netlink() (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(n.handle)
	if err != nil {
		return nil, fmt.Errorf("opening netlink in %s: %w", n.Name, err)
	}
	return h, nil
}

// Close deletes the namespace, and with it every device inside.
// Equivalent to: `ip netns del NAME`. It is idempotent. A namespace opened
// with OpenNS is only released, not deleted.
func (n *NS) Close() error {
	if n.handle == -1 {
		return nil
	}
	n.handle.Close()
	n.handle = -1
	if n.borrowed {
		return nil
	}
	if err := netns.DeleteNamed(n.Name); err != nil {
		return fmt.Errorf("deleting namespace %s: %w", n.Name, err)
	}
	return nil
}

// Do runs fn on an OS thread switched into the namespace and waits for it.
// fn must not start goroutines that expect to be in the namespace.
func (n *NS) Do(fn func() error) error {
	return nsthread.Run(n.handle, fn)
}

// Listen opens a listener in the namespace (see net.Listen).
func (n *NS) Listen(network, addr string) (l net.Listener, err error) {
	err = n.Do(func() error {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket in the namespace (see net.ListenPacket).
func (n *NS) ListenPacket(network, addr string) (c net.PacketConn, err error) {
	err = n.Do(func() error {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}

// Dial connects from the namespace (see net.Dialer.DialContext).
func (n *NS) Dial(ctx context.Context, network, addr string) (c net.Conn, err error) {
	err = n.Do(func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
