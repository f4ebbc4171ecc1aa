package sandbox

import (
	"net"
	"net/netip"
)

// Interface is a network interface inside a sandbox, as Interfaces reports
// it.
type Interface struct {
	Index int
	Name  string
	MAC   net.HardwareAddr // empty for lo and other devices without one
	MTU   int
	Up    bool           // administratively up
	Addrs []netip.Prefix // IPv4 and IPv6 addresses with their prefix length
}
