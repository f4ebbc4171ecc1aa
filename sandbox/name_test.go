package sandbox

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
		msg  string // part of the error
	}{
		{"a", true, ""},
		{"web-1", true, ""},
		{"A_b.c-D", true, ""},
		{"0", true, ""},
		{strings.Repeat("x", 64), true, ""},
		{"", false, "must not be empty"},
		{strings.Repeat("x", 65), false, "longer than 64 characters"},
		{".", false, "must start with a letter or digit"},
		{"..", false, "must start with a letter or digit"},
		{".hidden", false, "must start with a letter or digit"},
		{"-n", false, "must start with a letter or digit"},
		{"_x", false, "must start with a letter or digit"},
		{"a/b", false, `invalid sandbox name "a/b": only letters, digits, '_', '.' and '-' are allowed`},
		{"a b", false, "only letters"},
		{"a\nb", false, "only letters"},
		{"a:b", false, "only letters"},
		{"café", false, "only letters"},
		{"a\x00", false, "only letters"},
	} {
		n, err := ParseName(tc.name)
		if tc.ok {
			if err != nil || n.String() != tc.name {
				t.Errorf("ParseName(%q) = %q, %v, want the name", tc.name, n, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tc.msg) || !n.IsZero() {
			t.Errorf("ParseName(%q) = %q, %v, want an ErrInvalidName containing %q", tc.name, n, err, tc.msg)
		}
		if err := n.UnmarshalText([]byte(tc.name)); tc.name != "" && err == nil {
			t.Errorf("UnmarshalText(%q) accepted it", tc.name)
		}
	}
}

func TestRenderHosts(t *testing.T) {
	got, err := renderHosts([]HostEntry{
		{IP: mustAddr("10.0.0.2"), Names: []string{"web", "web.multi"}},
		{IP: mustAddr("::ffff:10.0.0.3"), Names: []string{"db"}},
		{IP: mustAddr("fd00::2"), Names: []string{"web"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := hostsHeader + "10.0.0.2\tweb web.multi\n10.0.0.3\tdb\nfd00::2\tweb\n"
	if string(got) != want {
		t.Errorf("hosts:\n%s\nwant:\n%s", got, want)
	}
	for _, bad := range [][]HostEntry{
		{{Names: []string{"x"}}},
		{{IP: mustAddr("10.0.0.2")}},
		{{IP: mustAddr("10.0.0.2"), Names: []string{"a b"}}},
		{{IP: mustAddr("10.0.0.2"), Names: []string{"x\n10.0.0.9 evil"}}},
		{{IP: mustAddr("10.0.0.2"), Names: []string{"#"}}},
		{{IP: mustAddr("10.0.0.2"), Names: []string{""}}},
	} {
		if _, err := renderHosts(bad); err == nil {
			t.Errorf("renderHosts(%v) succeeded, want an error", bad)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
