package dockerd

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// BusyboxImage is the image ImportBusybox makes. No registry is
// reachable from the tests; this is their only image.
const BusyboxImage = "meshnet-test/busybox:latest"

// BusyboxPage is /www/index.html of the image, for `httpd -h /www`.
const BusyboxPage = "hello from meshnet\n"

// busyboxBin is Debian's busybox-static: a static binary, so the image
// needs no libraries.
const busyboxBin = "/bin/busybox"

// BusyboxTar returns a root filesystem, as a tar stream, holding
// busybox-static as /bin/busybox and a symbolic link to it in /bin for
// each of its applets (sh, ip, ping, nc, httpd, wget, nslookup, sleep,
// …), /etc/passwd and /etc/group with root and nobody, an empty /tmp
// and /www/index.html (BusyboxPage).
func BusyboxTar(ctx context.Context) ([]byte, error) {
	bin, err := os.ReadFile(busyboxBin)
	if err != nil {
		return nil, fmt.Errorf("busybox-static (Install installs it): %w", err)
	}
	list, err := exec.CommandContext(ctx, busyboxBin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	add := func(h *tar.Header, data []byte) {
		h.ModTime = mtime
		if err == nil {
			err = tw.WriteHeader(h)
		}
		if err == nil && data != nil {
			_, err = tw.Write(data)
		}
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "root", "sys", "www"} {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}, nil)
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}, bin)
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" && !strings.Contains(applet, "/") {
			add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}, nil)
		}
	}
	files := []struct{ name, data string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
		{"www/index.html", BusyboxPage},
	}
	for _, f := range files {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data))}, []byte(f.data))
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("writing the busybox root filesystem: %w", err)
	}
	return buf.Bytes(), nil
}

// ImportBusybox imports BusyboxTar into d as BusyboxImage (`docker
// import`, CMD /bin/sh) and returns the image's name.
func ImportBusybox(ctx context.Context, d *Daemon) (string, error) {
	tarball, err := BusyboxTar(ctx)
	if err != nil {
		return "", err
	}
	if _, err := d.DockerInput(ctx, bytes.NewReader(tarball), "import",
		"--change", `CMD ["/bin/sh"]`, "-", BusyboxImage); err != nil {
		return "", err
	}
	return BusyboxImage, nil
}
