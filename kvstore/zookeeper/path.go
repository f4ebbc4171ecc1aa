package zookeeper

import (
	"fmt"
	"strings"
)

// znodePath maps a flat key onto its znode: each "/"-separated segment of
// the key is one level of the tree, escaped by escapeSegment, so that
// "meshnet/v1/subnets/10.1.0.0/24" is the znode
// /meshnet/v1/subnets/10.1.0.0/24. The mapping is one-to-one for every key.
func znodePath(key string) string {
	segs := strings.Split(key, "/")
	var b strings.Builder
	for i, seg := range segs {
		b.WriteByte('/')
		b.WriteString(escapeSegment(seg, i == 0))
	}
	return b.String()
}

// keyOf is the inverse of znodePath. It fails on a name that escapeSegment
// cannot have written (a znode someone else made).
func keyOf(path string) (string, error) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, seg := range segs {
		s, err := unescapeSegment(seg)
		if err != nil {
			return "", fmt.Errorf("znode %s is not a meshnet key: %w", path, err)
		}
		segs[i] = s
	}
	return strings.Join(segs, "/"), nil
}

// escapeSegment writes one key segment as a znode name ZooKeeper accepts:
// the bytes '%' and '/' and every byte outside printable ASCII become %XX
// (ZooKeeper refuses control characters and some Unicode ranges); an empty
// segment is "%"; the names ZooKeeper reserves ("." and "..", and
// "zookeeper" directly under the root, its own subtree) have their first
// byte escaped. Escaping keeps prefixes: if a is a prefix of b, the escaped
// a is a prefix of the escaped b, except for those reserved names.
func escapeSegment(seg string, atRoot bool) string {
	if seg == "" {
		return "%"
	}
	reserved := seg == "." || seg == ".." || (atRoot && seg == "zookeeper")
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c <= ' ' || c >= 0x7f || c == '%' || c == '/' || (i == 0 && reserved) {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func unescapeSegment(name string) (string, error) {
	if name == "%" {
		return "", nil
	}
	if !strings.Contains(name, "%") {
		return name, nil
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] != '%' {
			b.WriteByte(name[i])
			continue
		}
		if i+2 >= len(name) {
			return "", fmt.Errorf("truncated escape in %q", name)
		}
		hi, ok1 := unhex(name[i+1])
		lo, ok2 := unhex(name[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape in %q", name)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// splitPrefix splits a List or Watch prefix into the znode under which all
// its keys live and the beginning of the key segment that the children of
// that znode must have: "a/b/" is (/a/b, ""), "a/b/c" is (/a/b, "c"), ""
// is (/, "").
func splitPrefix(prefix string) (root, partial string) {
	dir, partial, ok := cutLast(prefix, "/")
	if !ok {
		return "/", prefix
	}
	return znodePath(dir), partial
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return "", s, false
	}
	return s[:i], s[i+len(sep):], true
}

// parentOf is the znode holding path; "/" for a child of the root.
func parentOf(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

// childPath joins a znode and a child name.
func childPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// matches says whether the child name of root belongs to the prefix whose
// last segment begins with partial. ZooKeeper's own subtree never does.
func matches(root, name, partial string) bool {
	if root == "/" && name == "zookeeper" {
		return false
	}
	if partial == "" {
		return true
	}
	seg, err := unescapeSegment(name)
	return err == nil && strings.HasPrefix(seg, partial)
}
