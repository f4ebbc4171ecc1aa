package nshost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HostDev is the name of every host's underlay interface.
const HostDev = "eth0"

// Underlay is a namespace holding a bridge ("ul0") that joins hosts, like a
// switch joins machines.
type Underlay struct {
	*NS
	Prefix string  // name prefix of every namespace it makes
	Hosts  []*Host // in the order added
}

// Host is a namespace standing in for a machine: its HostDev holds Addr and
// is cabled to the underlay bridge.
type Host struct {
	*NS
	Addr netip.Prefix // underlay address, e.g. 192.0.2.1/24
}

// NewUnderlay creates the namespace PREFIX-ul with the bridge ul0, up.
// Equivalent to: `ip netns add PREFIX-ul; ip -n PREFIX-ul link add ul0 type
// bridge; ip -n PREFIX-ul link set ul0 up`.
func NewUnderlay(prefix string) (*Underlay, error) {
	ns, err := NewNS(prefix + "-ul")
	if err != nil {
		return nil, err
	}
	u := &Underlay{NS: ns, Prefix: prefix}
	nl, err := ns.Netlink()
	if err != nil {
		return nil, errors.Join(err, u.Close())
	}
	defer nl.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "ul0"
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := nl.LinkAdd(br); err != nil {
		return nil, errors.Join(fmt.Errorf("adding underlay bridge: %w", err), u.Close())
	}
	if err := nl.LinkSetUp(br); err != nil {
		return nil, errors.Join(fmt.Errorf("setting underlay bridge up: %w", err), u.Close())
	}
	return u, nil
}

// AddHost creates the host namespace PREFIX-NAME whose HostDev (MTU 1500)
// holds addr and is cabled to the underlay bridge.
// Equivalent to: `ip netns add PREFIX-NAME; ip -n PREFIX-ul link add
// v-N master ul0 type veth peer name eth0 netns PREFIX-NAME;
// ip -n PREFIX-NAME addr add ADDR dev eth0; … up`.
func (u *Underlay) AddHost(name string, addr netip.Prefix) (*Host, error) {
	ns, err := NewNS(u.Prefix + "-" + name)
	if err != nil {
		return nil, err
	}
	h := &Host{NS: ns, Addr: addr}
	if err := u.cable(h); err != nil {
		return nil, errors.Join(err, ns.Close())
	}
	u.Hosts = append(u.Hosts, h)
	return h, nil
}

func (u *Underlay) cable(h *Host) error {
	unl, err := u.Netlink()
	if err != nil {
		return err
	}
	defer unl.Close()
	hnl, err := h.Netlink()
	if err != nil {
		return err
	}
	defer hnl.Close()
	br, err := unl.LinkByName("ul0")
	if err != nil {
		return fmt.Errorf("reading underlay bridge: %w", err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = fmt.Sprintf("v-%d", len(u.Hosts))
	attrs.MTU = 1500
	attrs.MasterIndex = br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: HostDev, PeerNamespace: netlink.NsFd(int(h.Handle()))}
	if err := unl.LinkAdd(veth); err != nil {
		return fmt.Errorf("cabling %s: %w", h.Name, err)
	}
	if err := unl.LinkSetUp(veth); err != nil {
		return fmt.Errorf("setting %s up: %w", attrs.Name, err)
	}
	dev, err := hnl.LinkByName(HostDev)
	if err != nil {
		return fmt.Errorf("reading %s in %s: %w", HostDev, h.Name, err)
	}
	ipnet := &net.IPNet{IP: h.Addr.Addr().AsSlice(), Mask: net.CIDRMask(h.Addr.Bits(), h.Addr.Addr().BitLen())}
	if err := hnl.AddrAdd(dev, &netlink.Addr{IPNet: ipnet}); err != nil {
		return fmt.Errorf("adding %s to %s: %w", h.Addr, h.Name, err)
	}
	if err := hnl.LinkSetUp(dev); err != nil {
		return fmt.Errorf("setting %s up in %s: %w", HostDev, h.Name, err)
	}
	return nil
}

// NewSandbox creates the namespace PREFIX-NAME for a sandbox (loopback up,
// nothing else); attaching it is the datapath's job.
func (u *Underlay) NewSandbox(name string) (*NS, error) {
	return NewNS(u.Prefix + "-" + name)
}

// Close deletes the hosts' namespaces and the underlay's. It does not know
// the sandboxes; close them yourself.
func (u *Underlay) Close() error {
	var errs []error
	for _, h := range u.Hosts {
		errs = append(errs, h.Close())
	}
	u.Hosts = nil
	errs = append(errs, u.NS.Close())
	return errors.Join(errs...)
}

// Throughput streams bytes over TCP from namespace from to a sink listening
// on addr (an address of namespace to) for duration d, and returns the bytes
// per second the sink received. One stream, like `iperf3 -t`. Cancelling ctx
// stops the stream and returns ctx.Err().
func Throughput(ctx context.Context, from, to *NS, addr string, d time.Duration) (float64, error) {
	return ThroughputVia(ctx, from, to, addr, "", d)
}

// ThroughputVia is Throughput with the sink listening on listen and the
// sender dialling dial (a published port that leads to it, say); an empty
// dial is the listening address.
func ThroughputVia(ctx context.Context, from, to *NS, listen, dial string, d time.Duration) (float64, error) {
	ln, err := to.Listen("tcp", listen)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	if dial == "" {
		dial = ln.Addr().String()
	}
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		done <- result{n, err}
	}()
	c, err := from.Dial(ctx, "tcp", dial)
	if err != nil {
		ln.Close()
		<-done
		return 0, err
	}
	buf := make([]byte, 128<<10)
	start := time.Now()
	deadline := start.Add(d)
	_ = c.SetWriteDeadline(deadline)
	// Cancelling ctx also ends a write blocked on a full window.
	stop := context.AfterFunc(ctx, func() { _ = c.SetWriteDeadline(time.Now()) })
	var werr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, werr = c.Write(buf); werr != nil {
			break
		}
	}
	stop()
	c.Close()
	r := <-done
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if r.err != nil {
		return 0, fmt.Errorf("receiving: %w", r.err)
	}
	var ne net.Error
	if werr != nil && !(errors.As(werr, &ne) && ne.Timeout()) {
		return 0, fmt.Errorf("sending: %w", werr)
	}
	return float64(r.n) / elapsed.Seconds(), nil
}

// SetCable plugs the host's underlay cable in (up) or pulls it out: its
// HostDev goes up or down, and with it every packet to and from the other
// hosts. Equivalent to: `ip -n PREFIX-NAME link set eth0 up|down`.
func (h *Host) SetCable(up bool) error {
	nl, err := h.Netlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	dev, err := nl.LinkByName(HostDev)
	if err != nil {
		return fmt.Errorf("reading %s in %s: %w", HostDev, h.Name, err)
	}
	if up {
		err = nl.LinkSetUp(dev)
	} else {
		err = nl.LinkSetDown(dev)
	}
	if err != nil {
		return fmt.Errorf("setting %s of %s up=%v: %w", HostDev, h.Name, up, err)
	}
	return nil
}

// Blackhole drops (on) or stops dropping the host's packets to addr, by a
// blackhole route: with the same on the other side, the two hosts are
// partitioned while both still reach everybody else.
// Equivalent to: `ip -n PREFIX-NAME route add|del blackhole ADDR/32`.
func (h *Host) Blackhole(addr netip.Addr, on bool) error {
	nl, err := h.Netlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	r := &netlink.Route{Dst: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(addr.BitLen(), addr.BitLen())},
		Type: unix.RTN_BLACKHOLE}
	if on {
		err = nl.RouteAdd(r)
	} else {
		err = nl.RouteDel(r)
	}
	if err != nil {
		return fmt.Errorf("blackhole route to %s in %s (on=%v): %w", addr, h.Name, on, err)
	}
	return nil
}
