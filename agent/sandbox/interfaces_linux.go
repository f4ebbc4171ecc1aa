package sandbox

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Interfaces lists the network interfaces inside the network namespace file
// path (RunDir/NAME or /proc/PID/ns/net) with their addresses, in kernel
// order.
// Equivalent to: `ip -n NAME addr show`.
func Interfaces(path string) ([]Interface, error) {
	h, err := netlinkAt(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := retryDump(func() ([]netlink.Link, error) { return h.LinkList() })
	if err != nil {
		return nil, fmt.Errorf("listing links in %s: %w", path, err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing addresses in %s: %w", path, err)
	}
	ifaces := make([]Interface, 0, len(links))
	byIndex := make(map[int]int, len(links)) // link index → position in ifaces
	for _, l := range links {
		a := l.Attrs()
		byIndex[a.Index] = len(ifaces)
		ifaces = append(ifaces, Interface{
			Index: a.Index,
			Name:  a.Name,
			MAC:   a.HardwareAddr,
			MTU:   a.MTU,
			Up:    a.Flags&net.FlagUp != 0,
		})
	}
	for _, a := range addrs {
		i, ok := byIndex[a.LinkIndex]
		if !ok || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		ifaces[i].Addrs = append(ifaces[i].Addrs, netip.PrefixFrom(ip.Unmap(), bits))
	}
	return ifaces, nil
}

// retryDump repeats a netlink dump that the kernel interrupted because the
// table changed under it.
func retryDump[T any](dump func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 5 {
		if v, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return v, err
}
