package zookeeper

import (
	"strings"
	"testing"
)

func TestZnodePath(t *testing.T) {
	for key, want := range map[string]string{
		"meshnet/v1/networks/abc":        "/meshnet/v1/networks/abc",
		"meshnet/v1/subnets/10.1.0.0/24": "/meshnet/v1/subnets/10.1.0.0/24",
		"a b/100%":                       "/a%20b/100%25",
		"a//b/":                          "/a/%/b/%",
		"./../.x":                        "/%2E/%2E./.x",
		"zookeeper/zookeeper":            "/%7Aookeeper/zookeeper",
		"":                               "/%",
		"ü\x00":                          "/%C3%BC%00",
	} {
		if got := znodePath(key); got != want {
			t.Errorf("znodePath(%q) = %q, want %q", key, got, want)
		}
		if back, err := keyOf(want); err != nil || back != key {
			t.Errorf("keyOf(%q) = %q, %v; want %q", want, back, err, key)
		}
	}
	for _, bad := range []string{"/a%", "/a%2", "/%zz"} {
		if key, err := keyOf(bad); err == nil {
			t.Errorf("keyOf(%q) = %q, want an error", bad, key)
		}
	}
}

func TestSplitPrefix(t *testing.T) {
	for prefix, want := range map[string][2]string{
		"meshnet/v1/networks/": {"/meshnet/v1/networks", ""},
		"meshnet/v1/subnets":   {"/meshnet/v1", "subnets"},
		"a":                    {"/", "a"},
		"":                     {"/", ""},
	} {
		if root, partial := splitPrefix(prefix); root != want[0] || partial != want[1] {
			t.Errorf("splitPrefix(%q) = %q, %q; want %q, %q", prefix, root, partial, want[0], want[1])
		}
	}
	if matches("/", "zookeeper", "") || !matches("/", "%7Aookeeper", "zoo") || matches("/a", "b%20", "c") {
		t.Error("matches picks the wrong children")
	}
}

// FuzzZnodePath: every key maps to a path ZooKeeper accepts, and back.
func FuzzZnodePath(f *testing.F) {
	for _, k := range []string{"meshnet/v1/ips/n/10.0.0.1", "a//b", "..", "zookeeper", "%41", "\xff/"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		path := znodePath(key)
		for _, seg := range strings.Split(path[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q maps to %q, with a segment ZooKeeper refuses", key, path)
			}
			for i := 0; i < len(seg); i++ {
				if seg[i] <= ' ' || seg[i] >= 0x7f {
					t.Fatalf("%q maps to %q, with byte %#x", key, path, seg[i])
				}
			}
		}
		if strings.HasPrefix(path, "/zookeeper/") || path == "/zookeeper" {
			t.Fatalf("%q maps into ZooKeeper's own subtree", key)
		}
		if back, err := keyOf(path); err != nil || back != key {
			t.Fatalf("%q -> %q -> %q, %v", key, path, back, err)
		}
	})
}
