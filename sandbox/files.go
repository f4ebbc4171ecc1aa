package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshnet/meshnet/internal/names"
)

// Files are the resolver files of a sandbox, which `ip netns exec NAME …`
// bind-mounts over the files of the same name in /etc.
type Files struct {
	// Hostname is written to hostname as "HOSTNAME\n"; "" writes no file.
	Hostname string
	// Hosts follow the standard localhost and IPv6 lines in hosts, one
	// line per entry, in order. The hosts file is always written.
	Hosts []HostEntry
	// ResolvConf is written to resolv.conf as it is; nil writes no file.
	ResolvConf []byte
}

// HostEntry is one line of a hosts file: "IP\tNAME NAME…".
type HostEntry struct {
	IP    netip.Addr
	Names []string
}

// hostsHeader is what every sandbox's hosts file starts with.
const hostsHeader = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"ff00::0\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

// WriteFiles writes the resolver files of the sandbox name into
// EtcDir/NAME (mode 0755, made if missing): hosts, and hostname and
// resolv.conf when f has them; files f leaves out are left as they are. Each
// file is replaced atomically (a temporary file in the same directory,
// renamed over it, mode 0644), so a process in the sandbox reads either the
// old or the new content, never a mix.
// Equivalent to: `mkdir -p /etc/netns/NAME` and writing the files there.
func WriteFiles(name Name, f Files) error {
	if err := name.check(); err != nil {
		return err
	}
	hosts, err := renderHosts(f.Hosts)
	if err != nil {
		return fmt.Errorf("writing hosts of sandbox %s: %w", name, err)
	}
	if f.Hostname != "" {
		if err := names.CheckDNS(f.Hostname); err != nil {
			return fmt.Errorf("writing hostname of sandbox %s: %w", name, err)
		}
	}
	dir := etcPath(name)
	if err := ensureDir(EtcDir); err != nil {
		return fmt.Errorf("creating %s: %w", EtcDir, err)
	}
	if err := ensureDir(dir); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := writeFileAtomic(dir, "hosts", hosts); err != nil {
		return err
	}
	if f.Hostname != "" {
		if err := writeFileAtomic(dir, "hostname", []byte(f.Hostname+"\n")); err != nil {
			return err
		}
	}
	if f.ResolvConf != nil {
		if err := writeFileAtomic(dir, "resolv.conf", f.ResolvConf); err != nil {
			return err
		}
	}
	return nil
}

// RemoveFiles deletes the directory EtcDir/NAME and everything in it; a
// missing directory is not an error.
// Equivalent to: `rm -rf /etc/netns/NAME`.
func RemoveFiles(name Name) error {
	if err := name.check(); err != nil {
		return err
	}
	if err := os.RemoveAll(etcPath(name)); err != nil {
		return fmt.Errorf("removing files of sandbox %s: %w", name, err)
	}
	return nil
}

// renderHosts returns the content of a hosts file: the standard header and
// then one line per entry.
func renderHosts(entries []HostEntry) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(hostsHeader)
	for _, e := range entries {
		if !e.IP.IsValid() {
			return nil, fmt.Errorf("hosts entry %q has no IP address", e.Names)
		}
		if len(e.Names) == 0 {
			return nil, fmt.Errorf("hosts entry %s has no names", e.IP)
		}
		for _, n := range e.Names {
			if err := names.CheckDNS(n); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(&b, "%s\t%s\n", e.IP.Unmap(), strings.Join(e.Names, " "))
	}
	return b.Bytes(), nil
}

// ensureDir makes dir with mode 0755 (whatever the umask) unless it exists.
func ensureDir(dir string) error {
	err := os.Mkdir(dir, 0o755)
	switch {
	case err == nil:
		return os.Chmod(dir, 0o755)
	case errors.Is(err, fs.ErrExist):
		return nil
	default:
		return err
	}
}

// writeFileAtomic replaces dir/name with data (mode 0644) through a
// temporary file in dir, which it never leaves behind. The rename makes a
// crash of the agent leave the old file or the new one; the data is not
// synced to disk first, because the files describe a network namespace,
// which does not outlive the machine: after a power loss there is no
// sandbox left to read them (and an fsync per file was a good part of a
// sandbox's creation time).
func writeFileAtomic(dir, name string, data []byte) (err error) {
	path := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
			err = fmt.Errorf("writing %s: %w", path, err)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
