package docker

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/dockerd"
)

// Containers on meshnet networks as Docker users run them: --ip,
// --mac-address, -p (programmed in meshnet's filter through
// ProgramExternalConnectivity), egress masqueraded to the host's address,
// --internal networks that reach no further than their peers, and docker
// network connect/disconnect of a second network.
func TestContainers(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		hosts := cluster(t, ctx, engine, "dkc"+tag, 2)
		h1, h2 := hosts[0], hosts[1]
		createNetwork(t, ctx, hosts, "--subnet", "10.78.0.0/24", "multi")
		createNetwork(t, ctx, hosts, "--subnet", "10.79.0.0/24", "--internal", "inside")

		const mac = "02:42:0a:4e:00:32"
		h1.docker(t, ctx, "run", "-d", "--net", "multi", "--name", "c1", "--ip", "10.78.0.50", "--mac-address", mac,
			"-p", "8080:80", dockerd.BusyboxImage, "sh", "-c", "mkdir -p /www && echo hello-c1 > /www/index.html && exec httpd -f -p 80 -h /www")
		h2.docker(t, ctx, "run", "-d", "--net", "multi", "--name", "c2", dockerd.BusyboxImage, "sleep", "600")
		if got := h1.docker(t, ctx, "exec", "c1", "cat", "/sys/class/net/eth0/address"); got != mac {
			t.Errorf("c1's MAC is %s, asked %s", got, mac)
		}
		if got := h1.docker(t, ctx, "exec", "c1", "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(got, "10.78.0.50/24") {
			t.Errorf("c1's eth0: %s", got)
		}
		eventually(t, 30*time.Second, "c2 on h2 fetches c1's page across VXLAN", func() error {
			out, err := h2.d.Docker(ctx, "exec", "c2", "wget", "-q", "-O-", "http://10.78.0.50/")
			if err != nil || !strings.Contains(out, "hello-c1") {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})

		// -p 8080:80 on h1, from h2's host namespace over the underlay.
		hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: h2.h.NS.Dial, DisableKeepAlives: true}}
		eventually(t, 30*time.Second, "c1's published port 192.0.2.1:8080 from h2", func() error {
			resp, err := hc.Get("http://192.0.2.1:8080/")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), "hello-c1") {
				return fmt.Errorf("answer %q", b)
			}
			return nil
		})

		// -P: the exposed port on a host port meshnet picks (docker port
		// shows nothing for a remote driver's ports; the sandbox does).
		h1.docker(t, ctx, "run", "-d", "--net", "multi", "--name", "c4", "--expose", "8081", "-P", dockerd.BusyboxImage,
			"sh", "-c", "mkdir -p /www && echo hello-c4 > /www/index.html && exec httpd -f -p 8081 -h /www")
		sbs, err := h1.api.SandboxList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hostPort := ""
		for _, sb := range sbs {
			if b := sb.Ports["8081/tcp"]; len(b) == 1 {
				hostPort = b[0].HostPort
			}
		}
		if hostPort == "" {
			t.Fatalf("no sandbox publishes 8081/tcp after docker run -P: %+v", sbs)
		}
		eventually(t, 30*time.Second, "c4's -P port 192.0.2.1:"+hostPort+" from h2", func() error {
			resp, err := hc.Get("http://192.0.2.1:" + hostPort + "/")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), "hello-c4") {
				return fmt.Errorf("answer %q", b)
			}
			return nil
		})

		// Egress: c1 reaches h2's address, seen as h1's.
		who, err := h2.h.NS.ServeWhoAmI("192.0.2.2:9090")
		if err != nil {
			t.Fatal(err)
		}
		defer who.Close()
		eventually(t, 30*time.Second, "c1 reaches the underlay masqueraded", func() error {
			out, err := h1.d.Docker(ctx, "exec", "c1", "nc", "192.0.2.2", "9090")
			if err != nil || strings.TrimSpace(out) != "192.0.2.1" {
				return fmt.Errorf("%v: seen as %q", err, out)
			}
			return nil
		})

		// A second network, --internal: c2 joins it and reaches c3 on h1
		// there; c3 reaches nothing else.
		h1.docker(t, ctx, "run", "-d", "--net", "inside", "--name", "c3", dockerd.BusyboxImage, "sleep", "600")
		h2.docker(t, ctx, "network", "connect", "inside", "c2")
		ip3 := h1.docker(t, ctx, "inspect", "-f", "{{.NetworkSettings.Networks.inside.IPAddress}}", "c3")
		eventually(t, 30*time.Second, "c2 pings c3 on the internal network", func() error {
			out, err := h2.d.Docker(ctx, "exec", "c2", "ping", "-c", "1", "-W", "1", ip3)
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		if out, err := h1.d.Docker(ctx, "exec", "c3", "nc", "-w", "2", "192.0.2.2", "9090"); err == nil && strings.Contains(out, "192.0.2") {
			t.Errorf("c3 on an internal network reached the underlay: %q", out)
		}
		h2.docker(t, ctx, "network", "disconnect", "inside", "c2")
		if out := h2.docker(t, ctx, "exec", "c2", "ip", "-o", "link"); strings.Contains(out, "eth1") {
			t.Errorf("c2 still has eth1 after docker network disconnect:\n%s", out)
		}
		n, err := h1.api.NetworkInspect(ctx, "inside")
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Containers) != 1 {
			t.Errorf("endpoints on inside after the disconnect: %v", n.Containers)
		}
	})
}
