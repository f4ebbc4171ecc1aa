// Package names holds the two rules for the names users give meshnet:
// identifiers (networks, sandboxes, hostnames, container ids) and DNS
// names (aliases, and every name written into a sandbox's hosts file).
package names

import (
	"fmt"
	"strings"
)

// Valid reports whether s is an identifier of at most max characters:
// ASCII letters, digits, '_', '.' and '-', starting with a letter or digit
// (Docker's rule for container and network names). Such a name is never
// "." or "..", never a path, and safe in a file name.
func Valid(s string, max int) bool {
	if s == "" || len(s) > max || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// FirstBad describes why s is not an identifier: "" when it is one (of
// any length), else what is wrong, for an error message.
func FirstBad(s string) string {
	switch {
	case s == "":
		return "it must not be empty"
	case !alnum(s[0]):
		return "it must start with a letter or digit"
	case !Valid(s, len(s)):
		return "only letters, digits, '_', '.' and '-' are allowed"
	}
	return ""
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// CheckDNS checks a DNS name given for a sandbox (an alias, a name of a
// hosts entry): 1 to 253 characters, none of them blank, a control
// character, '#' or '/', which would break a line of a hosts file or a
// path.
func CheckDNS(s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("invalid name %q: it must be 1 to 253 characters long", s)
	}
	if strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == '#' || r == '/' || r == 0x7f }) >= 0 {
		return fmt.Errorf("invalid name %q: it must not contain spaces, control characters, '#' or '/'", s)
	}
	return nil
}
