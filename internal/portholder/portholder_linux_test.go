package portholder

import (
	"net"
	"os"
	"testing"
)

// The test process itself holds a TCP and a UDP port, and is named.
func TestFind(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, c := range []struct {
		proto string
		port  int
	}{{"tcp", l.Addr().(*net.TCPAddr).Port}, {"udp", u.LocalAddr().(*net.UDPAddr).Port}} {
		pid, name, ok := Find(c.proto, c.port)
		if !ok || pid != os.Getpid() || name == "" {
			t.Errorf("%s port %d: pid %d %q %v, want pid %d", c.proto, c.port, pid, name, ok, os.Getpid())
		}
	}
	l.Close()
	if _, _, ok := Find("tcp", l.Addr().(*net.TCPAddr).Port); ok {
		t.Errorf("a closed port still has a holder")
	}
}
