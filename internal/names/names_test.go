package names

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "web-1": true, "A_b.c-D": true, "0": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, ".": false, "..": false, "-n": false, "_x": false,
		"a/b": false, "a b": false, "a\nb": false, "café": false, "a\x00": false,
	} {
		if got := Valid(s, 64); got != want {
			t.Errorf("Valid(%q, 64) = %v, want %v", s, got, want)
		}
		if (FirstBad(s) == "") != (want || len(s) > 64) {
			t.Errorf("FirstBad(%q) = %q", s, FirstBad(s))
		}
	}
}

func TestCheckDNS(t *testing.T) {
	for s, ok := range map[string]bool{
		"db": true, "db.multi": true, "Web_1": true, strings.Repeat("x", 253): true,
		"": false, strings.Repeat("x", 254): false, "a b": false, "x\n10.0.0.9 evil": false, "#": false, "a/b": false, "a\tb": false,
	} {
		if err := CheckDNS(s); (err == nil) != ok {
			t.Errorf("CheckDNS(%q) = %v", s, err)
		}
	}
}

// FuzzValid checks that every accepted identifier is a plain file name.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"a", "..", "a/b", "x.y-z_1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Valid(s, 64) && (s == "." || s == ".." || strings.ContainsAny(s, "/\x00 \t\n") || len(s) > 64) {
			t.Fatalf("Valid accepted %q", s)
		}
	})
}
