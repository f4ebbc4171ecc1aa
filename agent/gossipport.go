package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/meshnet/meshnet/internal/portholder"
)

// checkGossipPort tries the gossip port, TCP and UDP, on the advertise
// address, and says in one sentence who holds it if another program does:
// Docker Swarm and a dockerd with --cluster-store gossip on 7946 too.
func checkGossipPort(addr netip.Addr, port int) error {
	ap := netip.AddrPortFrom(addr, uint16(port)).String()
	for _, proto := range []string{"tcp", "udp"} {
		var err error
		if proto == "tcp" {
			var l net.Listener
			if l, err = net.Listen("tcp", ap); err == nil {
				l.Close()
			}
		} else {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", ap); err == nil {
				c.Close()
			}
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		// A previous agent still shutting down lets go in a moment (Start
		// waits for it), and so may a holder we cannot name.
		pid, name, ok := portholder.Find(proto, port)
		if !ok || name == "meshagent" {
			return nil
		}
		return fmt.Errorf("the gossip port %s/%s is taken (by %s, pid %d): Docker Swarm and dockerd's --cluster-store use 7946 too; "+
			"give the agents another port on every host (cluster-advertise: IFACE:7947)", ap, proto, name, pid)
	}
	return nil
}
