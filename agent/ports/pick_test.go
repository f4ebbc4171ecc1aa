package ports

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	published := []Mapping{{Proto: "tcp", HostPort: 32768}, {Proto: "tcp", HostPort: 8080, HostIP: netip.MustParseAddr("127.0.0.1")}}
	bound := map[uint16]bool{32769: true, 9000: true}
	usable := func(m Mapping) error {
		if bound[m.HostPort] {
			return errors.New("EADDRINUSE")
		}
		return nil
	}
	ms := []Mapping{{Proto: "tcp", Port: 80}, {Proto: "tcp", Port: 81}, {Proto: "udp", Port: 53}, {Proto: "tcp", HostPort: 9000, HostPortEnd: 9002, Port: 90}}
	if err := Pick(ms, published, usable, 32768, 32800); err != nil {
		t.Fatal(err)
	}
	want := []uint16{32770, 32771, 32768, 9001}
	for i, m := range ms {
		if m.HostPort != want[i] || m.HostPortEnd != 0 {
			t.Errorf("mapping %d: host port %d (end %d), want %d", i, m.HostPort, m.HostPortEnd, want[i])
		}
	}
	for _, c := range []struct {
		m    Mapping
		want string
	}{
		{Mapping{Proto: "tcp", HostPort: 8080, Port: 80}, "host port 0.0.0.0:8080/tcp is already published"},
		{Mapping{Proto: "tcp", HostPort: 9000, Port: 80}, "host port 0.0.0.0:9000/tcp is in use on this host"},
		{Mapping{Proto: "tcp", HostPort: 32769, HostPortEnd: 32769, Port: 80}, "no free host port for 80/tcp in 32769-32769"},
	} {
		ms := []Mapping{c.m}
		err := Pick(ms, published, usable, 1, 2)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), c.want) || ms[0] != c.m {
			t.Errorf("%+v: %v (mapping %+v), want %q and nothing changed", c.m, err, ms[0], c.want)
		}
	}
	// Two mappings of one request may not share a host port.
	ms = []Mapping{{Proto: "tcp", HostPort: 7000, Port: 80}, {Proto: "tcp", HostPort: 7000, Port: 81}}
	if err := Pick(ms, nil, usable, 1, 2); !errors.Is(err, ErrUnavailable) {
		t.Errorf("the same host port twice: %v", err)
	}
}
