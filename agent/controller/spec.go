package controller

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/internal/names"
)

// endpointSpec is what a new endpoint asks for, checked: the edge's
// strings parsed once into the values the steps take.
type endpointSpec struct {
	name    string
	ip, ip6 netip.Addr
	mac     net.HardwareAddr // nil: derived from ip
	ifname  string           // "": the first free ethN
	aliases []string
	links   []string // SANDBOX:ALIAS
}

// endpointRequest is an endpoint as a request gives it.
type endpointRequest struct {
	name, ip, ip6, mac, ifname string
	aliases, links             []string
}

// checkEndpoint validates the addresses, MAC, interface name, aliases and
// links asked for an endpoint on n.
func checkEndpoint(n *driver.Network, r endpointRequest) (endpointSpec, error) {
	spec := endpointSpec{name: r.name, aliases: r.aliases, ifname: r.ifname}
	var err error
	if r.name != "" && names.CheckDNS(r.name) != nil {
		return spec, service.Invalidf("invalid endpoint name %q", r.name)
	}
	if r.ip != "" {
		if spec.ip, err = netip.ParseAddr(r.ip); err != nil || !spec.ip.Is4() {
			return spec, service.Invalidf("invalid IPv4 address %q", r.ip)
		}
	}
	if r.ip6 != "" {
		if spec.ip6, err = netip.ParseAddr(r.ip6); err != nil || !spec.ip6.Is6() || spec.ip6.Is4In6() {
			return spec, service.Invalidf("invalid IPv6 address %q", r.ip6)
		}
		if !n.IPv6 {
			return spec, service.Invalidf("network %s has no IPv6: --ip6 needs a network created with --ipv6", n.Name)
		}
	}
	if r.mac != "" {
		if spec.mac, err = net.ParseMAC(r.mac); err != nil || len(spec.mac) != 6 || spec.mac[0]&1 != 0 || slices.Equal(spec.mac, make(net.HardwareAddr, 6)) {
			return spec, service.Invalidf("invalid MAC address %q: a unicast Ethernet address is needed", r.mac)
		}
	}
	if r.ifname != "" {
		if err := checkIfName(r.ifname); err != nil {
			return spec, err
		}
	}
	for _, al := range r.aliases {
		if names.CheckDNS(al) != nil {
			return spec, service.Invalidf("invalid alias %q", al)
		}
	}
	for _, l := range r.links {
		name, alias, ok := strings.Cut(l, ":")
		if name == "" || (ok && alias == "") || strings.ContainsAny(l, " \t/") {
			return spec, service.Invalidf("invalid link %q: use SANDBOX or SANDBOX:ALIAS", l)
		}
		if !ok {
			alias = name
		}
		spec.links = append(spec.links, name+":"+alias)
	}
	return spec, nil
}

// checkIfName checks an interface name asked for.
func checkIfName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n%") {
		return service.Invalidf("invalid interface name %q: 1 to 15 characters, no '/', ':', '%%' or spaces", name)
	}
	return nil
}
