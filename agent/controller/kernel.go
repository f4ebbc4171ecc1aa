package controller

// The controller's seams to the kernel, so that its operations can be
// tested with fakes: sandbox namespaces and files (package sandbox), and
// binding host ports. The datapath and the packet filter are behind the
// dataplane's own seams.

import (
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/sandbox"
)

// Namespaces is the kernel side of sandboxes: package sandbox.
type Namespaces interface {
	Create(name sandbox.Name) (string, error)
	Attach(name sandbox.Name, target string) (string, error)
	Remove(name sandbox.Name) error
	WriteFiles(name sandbox.Name, f sandbox.Files) error
	RemoveFiles(name sandbox.Name) error
	Identify(path string) (sandbox.NSID, error)
	Interfaces(path string) ([]sandbox.Interface, error)
}

// kernelNamespaces is Namespaces on the kernel.
type kernelNamespaces struct{}

func (kernelNamespaces) Create(name sandbox.Name) (string, error) { return sandbox.Create(name) }
func (kernelNamespaces) Attach(name sandbox.Name, target string) (string, error) {
	return sandbox.Attach(name, target)
}
func (kernelNamespaces) Remove(name sandbox.Name) error { return sandbox.Remove(name) }
func (kernelNamespaces) WriteFiles(name sandbox.Name, f sandbox.Files) error {
	return sandbox.WriteFiles(name, f)
}
func (kernelNamespaces) RemoveFiles(name sandbox.Name) error { return sandbox.RemoveFiles(name) }
func (kernelNamespaces) Identify(path string) (sandbox.NSID, error) {
	return sandbox.Identify(path)
}
func (kernelNamespaces) Interfaces(path string) ([]sandbox.Interface, error) {
	return sandbox.Interfaces(path)
}

// hostNetNS is the host's network namespace: the agent's own.
const hostNetNS = "/proc/self/ns/net"

// portUsable tries to bind the host port, in the agent's (the host's)
// network namespace. Equivalent to: `ss -ltn 'sport = :PORT'` finding
// nothing.
func portUsable(m ports.Mapping) error {
	addr := "0.0.0.0"
	if m.HostIP.IsValid() {
		addr = m.HostIP.String()
	}
	hostPort := net.JoinHostPort(addr, strconv.Itoa(int(m.HostPort)))
	if m.Proto == "udp" {
		c, err := net.ListenPacket("udp4", hostPort)
		if err == nil {
			c.Close()
		}
		return err
	}
	l, err := net.Listen("tcp4", hostPort)
	if err == nil {
		l.Close()
	}
	return err
}

// ephemeralRange is the host's ephemeral port range, where -P picks from.
func ephemeralRange() (uint16, uint16) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); err == nil && len(f) == 2 {
		lo, err1 := strconv.ParseUint(f[0], 10, 16)
		hi, err2 := strconv.ParseUint(f[1], 10, 16)
		if err1 == nil && err2 == nil && lo > 0 && lo <= hi {
			return uint16(lo), uint16(hi)
		}
	}
	return 32768, 60999
}
