package main

import (
	"fmt"
	"net/netip"
	"strings"
)

// parseKV parses repeated KEY=VALUE flags into a map (nil when there are
// none); later keys win. With valueOptional, a bare KEY means KEY="" (as
// Docker's --label allows).
func parseKV(flag string, values []string, valueOptional bool) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(values))
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" || (!ok && !valueOptional) {
			return nil, fmt.Errorf("invalid --%s %q: expected KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// parseFilters parses repeated -f KEY=VALUE into the API's filters.
func parseFilters(values []string) (map[string][]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	filters := make(map[string][]string)
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad format of filter %q: expected KEY=VALUE", kv)
		}
		filters[k] = append(filters[k], v)
	}
	return filters, nil
}

// parseLinks checks SANDBOX:ALIAS links; a bare SANDBOX is its own alias,
// as with Docker's --link.
func parseLinks(values []string) ([]string, error) {
	var links []string
	for _, l := range values {
		name, alias, ok := strings.Cut(l, ":")
		if !ok {
			alias = name
		}
		if name == "" || alias == "" || strings.Contains(alias, ":") {
			return nil, fmt.Errorf("invalid --link %q: expected SANDBOX:ALIAS", l)
		}
		links = append(links, name+":"+alias)
	}
	return links, nil
}

// checkAddr checks the value of --ip (v6 false) or --ip6 (v6 true); "" is
// fine, meaning none was asked for.
func checkAddr(s string, v6 bool) error {
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	switch {
	case v6 && (err != nil || !a.Is6() || a.Is4In6()):
		return fmt.Errorf("invalid IPv6 address %q", s)
	case !v6 && (err != nil || !a.Is4()):
		return fmt.Errorf("invalid IPv4 address %q", s)
	}
	return nil
}
