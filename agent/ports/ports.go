// Package ports reads Docker's port-publishing flags (-p, -P, --expose)
// into mappings, and picks free host ports for the ones that need one.
// It does no NAT itself: the firewall package turns mappings into rules.
package ports

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every parse error; the message is one sentence.
var ErrInvalid = errors.New("invalid port specification")

func invalid(format string, args ...any) error {
	return &portError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

// portError is a refusal: its message is the sentence alone, its kind
// (ErrInvalid, ErrUnavailable) what it wraps.
type portError struct {
	kind error
	msg  string
}

func (e *portError) Error() string { return e.msg }
func (e *portError) Unwrap() error { return e.kind }

// Mapping publishes a sandbox port on the host.
type Mapping struct {
	Proto  string     `json:"proto"`            // "tcp" or "udp"
	HostIP netip.Addr `json:"host_ip,omitzero"` // zero: every address of the host
	// HostPort is the published port; 0 until one is picked. A requested
	// range (-p 8000-8010:80) is HostPort..HostPortEnd until then.
	HostPort    uint16 `json:"host_port"`
	HostPortEnd uint16 `json:"host_port_end,omitempty"`
	Port        uint16 `json:"port"` // in the sandbox
}

// Exposed is a sandbox port that -P publishes and a --link reaches
// (--expose).
type Exposed struct {
	Proto string `json:"proto"`
	Port  uint16 `json:"port"`
}

// String renders a picked mapping as `docker port` does:
// "80/tcp -> 0.0.0.0:49153".
func (m Mapping) String() string {
	ip := "0.0.0.0"
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
	}
	return fmt.Sprintf("%d/%s -> %s", m.Port, m.Proto, netip.AddrPortFrom(netip.MustParseAddr(ip), m.HostPort))
}

// Key names the host side of a mapping: what two mappings must not share.
func (m Mapping) Key() string {
	ip := ""
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
	}
	return fmt.Sprintf("%s/%s:%d", m.Proto, ip, m.HostPort)
}

// Conflicts reports whether two picked mappings claim the same host port:
// same protocol and port, and the same address or either on every one.
func (m Mapping) Conflicts(o Mapping) bool {
	return m.Proto == o.Proto && m.HostPort == o.HostPort &&
		(!m.HostIP.IsValid() || !o.HostIP.IsValid() || m.HostIP == o.HostIP)
}

// ExposedPorts lists the ports a sandbox exposes: --expose values and the
// sandbox ports of -p values, once each (what a --link may reach).
func ExposedPorts(publish, expose []string) ([]Exposed, error) {
	var out []Exposed
	add := func(e Exposed) {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	for _, e := range expose {
		es, err := parseExpose(e)
		if err != nil {
			return nil, err
		}
		for _, x := range es {
			add(x)
		}
	}
	for _, p := range publish {
		ms, err := parsePublish(p)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			add(Exposed{Proto: m.Proto, Port: m.Port})
		}
	}
	return out, nil
}

// Parse reads -p values, --expose values and -P into mappings; with all,
// every exposed port not published otherwise gets a mapping to a host
// port to pick.
func Parse(publish, expose []string, all bool) ([]Mapping, error) {
	var out []Mapping
	for _, p := range publish {
		ms, err := parsePublish(p)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	var exposed []Exposed
	for _, e := range expose {
		es, err := parseExpose(e)
		if err != nil {
			return nil, err
		}
		exposed = append(exposed, es...)
	}
	if all {
		for _, e := range exposed {
			if !slices.ContainsFunc(out, func(m Mapping) bool { return m.Proto == e.Proto && m.Port == e.Port }) {
				out = append(out, Mapping{Proto: e.Proto, Port: e.Port})
			}
		}
	}
	return out, nil
}

// parsePublish reads [HOSTIP:][HOSTPORT[-END]:]PORT[-END][/PROTO].
func parsePublish(s string) ([]Mapping, error) {
	spec, proto, err := splitProto(s)
	if err != nil {
		return nil, err
	}
	var hostIP netip.Addr
	if strings.HasPrefix(spec, "[") { // [IPv6]:…
		end := strings.Index(spec, "]:")
		if end < 0 {
			return nil, invalid("%q: an IPv6 host address is written [ADDR]:HOSTPORT:PORT", s)
		}
		if hostIP, err = netip.ParseAddr(spec[1:end]); err != nil || !hostIP.Is6() {
			return nil, invalid("%q: %q is not an IPv6 address", s, spec[1:end])
		}
		spec = spec[end+2:]
	}
	parts := strings.Split(spec, ":")
	var hostPart, portPart string
	switch len(parts) {
	case 1:
		portPart = parts[0]
	case 2:
		hostPart, portPart = parts[0], parts[1]
	case 3:
		if hostIP.IsValid() {
			return nil, invalid("%q: use [HOSTIP:]HOSTPORT:PORT[/tcp|udp]", s)
		}
		if hostIP, err = netip.ParseAddr(parts[0]); err != nil || !hostIP.Is4() {
			return nil, invalid("%q: %q is not an IPv4 address (write IPv6 ones as [ADDR])", s, parts[0])
		}
		hostPart, portPart = parts[1], parts[2]
	default:
		return nil, invalid("%q: use [HOSTIP:]HOSTPORT:PORT[/tcp|udp]", s)
	}
	if hostIP.IsValid() && hostIP.IsUnspecified() {
		hostIP = netip.Addr{} // 0.0.0.0 and :: mean every address
	}
	lo, hi, err := parseRange(s, portPart)
	if err != nil {
		return nil, err
	}
	var hlo, hhi uint16
	if hostPart != "" {
		if hlo, hhi, err = parseRange(s, hostPart); err != nil {
			return nil, err
		}
	}
	var out []Mapping
	switch {
	case hostPart == "": // random host ports
		for p := lo; ; p++ {
			out = append(out, Mapping{Proto: proto, HostIP: hostIP, Port: p})
			if p == hi {
				break
			}
		}
	case hi-lo == hhi-hlo: // one to one
		for i := 0; i <= int(hi-lo); i++ {
			out = append(out, Mapping{Proto: proto, HostIP: hostIP, HostPort: hlo + uint16(i), Port: lo + uint16(i)})
		}
	case lo == hi: // one port, a host range to pick it from
		out = append(out, Mapping{Proto: proto, HostIP: hostIP, HostPort: hlo, HostPortEnd: hhi, Port: lo})
	default:
		return nil, invalid("%q: the host and sandbox port ranges differ in length", s)
	}
	return out, nil
}

// parseExpose reads PORT[-END][/PROTO].
func parseExpose(s string) ([]Exposed, error) {
	spec, proto, err := splitProto(s)
	if err != nil {
		return nil, err
	}
	lo, hi, err := parseRange(s, spec)
	if err != nil {
		return nil, err
	}
	var out []Exposed
	for p := lo; ; p++ {
		out = append(out, Exposed{Proto: proto, Port: p})
		if p == hi {
			break
		}
	}
	return out, nil
}

func splitProto(s string) (spec, proto string, err error) {
	spec, proto, found := strings.Cut(s, "/")
	if !found {
		return spec, "tcp", nil
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return "", "", invalid("%q: the protocol is tcp or udp, not %q", s, proto)
	}
	return spec, proto, nil
}

// parseRange reads PORT or LO-HI, 1-65535.
func parseRange(whole, s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	l, err1 := strconv.ParseUint(a, 10, 16)
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.ParseUint(b, 10, 16)
	}
	switch {
	case err1 != nil || err2 != nil || l == 0 || h == 0:
		return 0, 0, invalid("%q: %q is not a port (1-65535) or a range of them", whole, s)
	case h < l:
		return 0, 0, invalid("%q: the range %s ends before it starts", whole, s)
	}
	return uint16(l), uint16(h), nil
}
