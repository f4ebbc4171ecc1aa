package sandbox

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dirNames lists dir, temporary files included.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFiles(t *testing.T) {
	needRoot(t)
	name := testName(t)
	if _, err := Create(name); err != nil {
		t.Fatal(err)
	}
	resolv := []byte("nameserver 192.0.2.53\noptions ndots:0\n")
	err := WriteFiles(name, Files{
		Hostname:   "web",
		Hosts:      []HostEntry{{IP: mustAddr("10.0.0.2"), Names: []string{"web", "web.multi"}}},
		ResolvConf: resolv,
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(EtcDir, name.String())
	wantHosts := hostsHeader + "10.0.0.2\tweb web.multi\n"
	if got := readFile(t, filepath.Join(dir, "hosts")); got != wantHosts {
		t.Errorf("hosts:\n%s\nwant:\n%s", got, wantHosts)
	}
	if got := readFile(t, filepath.Join(dir, "hostname")); got != "web\n" {
		t.Errorf("hostname %q, want %q", got, "web\n")
	}
	if got := readFile(t, filepath.Join(dir, "resolv.conf")); got != string(resolv) {
		t.Errorf("resolv.conf %q, want %q", got, resolv)
	}
	if got, want := dirNames(t, dir), []string{"hostname", "hosts", "resolv.conf"}; !slices.Equal(got, want) {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 || !fi.IsDir() {
		t.Errorf("%s: %v, %v; want a directory, mode 0755", dir, fi.Mode(), err)
	}
	for _, f := range []string{"hosts", "hostname", "resolv.conf"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode() != 0o644 {
			t.Errorf("%s: %v, %v; want mode 0644", f, fi.Mode(), err)
		}
	}

	// `ip netns exec` shows them in the sandbox's /etc.
	out := ipCmd(t, "netns", "exec", name.String(), "cat", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
	if want := wantHosts + "web\n" + string(resolv); out != want {
		t.Errorf("ip netns exec %s cat …:\n%s\nwant:\n%s", name, out, want)
	}

	// Files left out of Files are left alone.
	if err := WriteFiles(name, Files{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "hosts")); got != hostsHeader {
		t.Errorf("hosts after rewrite:\n%s\nwant the header alone", got)
	}
	if readFile(t, filepath.Join(dir, "hostname")) != "web\n" || readFile(t, filepath.Join(dir, "resolv.conf")) != string(resolv) {
		t.Error("hostname or resolv.conf changed though not given")
	}

	if err := RemoveFiles(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after RemoveFiles: %v", dir, err)
	}
	if err := RemoveFiles(name); err != nil {
		t.Errorf("second RemoveFiles: %v", err)
	}
	if !Exists(name) {
		t.Error("RemoveFiles removed the namespace")
	}
}

func TestWriteFilesInvalid(t *testing.T) {
	needRoot(t)
	name := testName(t)
	for _, f := range []Files{
		{Hostname: "two words"},
		{Hostname: "x\ny"},
		{Hosts: []HostEntry{{Names: []string{"noip"}}}},
		{Hosts: []HostEntry{{IP: mustAddr("10.0.0.2"), Names: []string{"a\n10.6.6.6 b"}}}},
	} {
		if err := WriteFiles(name, f); err == nil {
			t.Errorf("WriteFiles(%+v) succeeded, want an error", f)
		}
	}
	if _, err := os.Lstat(filepath.Join(EtcDir, name.String())); !os.IsNotExist(err) {
		t.Errorf("invalid WriteFiles created %s (%v)", filepath.Join(EtcDir, name.String()), err)
	}
}

// TestWriteFilesAtomic rewrites hosts while readers read it: every read
// sees one whole version, and no temporary file is left.
func TestWriteFilesAtomic(t *testing.T) {
	needRoot(t)
	name := testName(t)
	var versions [2]Files
	var want [2][]byte
	for i := range versions {
		var hosts []HostEntry
		for j := range 500 { // a file of tens of kilobytes
			ip := netip.AddrFrom4([4]byte{10, byte(i), byte(j >> 8), byte(j)})
			hosts = append(hosts, HostEntry{IP: ip, Names: []string{fmt.Sprintf("v%d-host-%d", i, j)}})
		}
		versions[i] = Files{Hosts: hosts}
		var err error
		if want[i], err = renderHosts(hosts); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFiles(name, versions[0]); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(EtcDir, name.String(), "hosts")
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := os.ReadFile(path)
				if err != nil {
					t.Errorf("reading hosts: %v", err)
					return
				}
				if !bytes.Equal(b, want[0]) && !bytes.Equal(b, want[1]) {
					t.Errorf("read a partial hosts file of %d bytes", len(b))
					return
				}
			}
		})
	}
	for i := range 200 {
		if err := WriteFiles(name, versions[i%2]); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	readers.Wait()
	if got := dirNames(t, filepath.Join(EtcDir, name.String())); !slices.Equal(got, []string{"hosts"}) {
		t.Errorf("directory holds %v, want hosts alone", got)
	}
}
