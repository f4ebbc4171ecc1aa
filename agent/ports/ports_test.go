package ports

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		publish, expose []string
		all             bool
		want            string
	}{
		{publish: []string{"8080:80"}, want: "tcp/:8080-0>80"},
		{publish: []string{"127.0.0.1:8080:80/udp"}, want: "udp/127.0.0.1:8080-0>80"},
		{publish: []string{"0.0.0.0:8080:80"}, want: "tcp/:8080-0>80"},
		{publish: []string{"[::1]:8080:80"}, want: "tcp/::1:8080-0>80"},
		{publish: []string{"80"}, want: "tcp/:0-0>80"},
		{publish: []string{":80"}, want: "tcp/:0-0>80"},
		{publish: []string{"8000-8001:80-81"}, want: "tcp/:8000-0>80 tcp/:8001-0>81"},
		{publish: []string{"8000-8010:80"}, want: "tcp/:8000-8010>80"},
		{publish: []string{"80-81"}, want: "tcp/:0-0>80 tcp/:0-0>81"},
		{expose: []string{"443", "53/udp"}, all: true, want: "tcp/:0-0>443 udp/:0-0>53"},
		{publish: []string{"8443:443"}, expose: []string{"443", "90"}, all: true, want: "tcp/:8443-0>443 tcp/:0-0>90"},
		{expose: []string{"443"}, want: ""},
	} {
		got, err := Parse(c.publish, c.expose, c.all)
		if err != nil {
			t.Errorf("%v %v %v: %v", c.publish, c.expose, c.all, err)
			continue
		}
		var s []string
		for _, m := range got {
			s = append(s, fmt.Sprintf("%s/%s:%d-%d>%d", m.Proto, addr(m), m.HostPort, m.HostPortEnd, m.Port))
		}
		if strings.Join(s, " ") != c.want {
			t.Errorf("%v %v %v: got %q, want %q", c.publish, c.expose, c.all, strings.Join(s, " "), c.want)
		}
	}
	for _, bad := range []string{"", "x", "0:80", "8080:0", "70000:80", "8080:80/sctp", "1.2.3:8080:80", "a:b:c:d",
		"8000-8002:80-81", "90-80:80", "[::1:80:80", "[1.2.3.4]:80:80", "::1:80:80"} {
		_, err := Parse([]string{bad}, nil, false)
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one ErrInvalid line", bad, err)
		}
	}
	if _, err := Parse(nil, []string{"80/icmp"}, true); !errors.Is(err, ErrInvalid) {
		t.Errorf("expose 80/icmp: %v", err)
	}
}

func addr(m Mapping) string {
	if m.HostIP.IsValid() {
		return m.HostIP.String()
	}
	return ""
}

func TestConflicts(t *testing.T) {
	all := Mapping{Proto: "tcp", HostPort: 80}
	lo := Mapping{Proto: "tcp", HostPort: 80, HostIP: netip.MustParseAddr("127.0.0.1")}
	other := Mapping{Proto: "tcp", HostPort: 80, HostIP: netip.MustParseAddr("192.0.2.1")}
	udp := Mapping{Proto: "udp", HostPort: 80}
	if !all.Conflicts(lo) || !lo.Conflicts(all) || lo.Conflicts(other) || all.Conflicts(udp) {
		t.Error("conflicts")
	}
	if got := lo.String(); got != "0/tcp -> 127.0.0.1:80" {
		t.Errorf("String: %s", got)
	}
}
