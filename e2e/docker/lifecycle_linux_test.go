package docker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/dockerd"
)

// The agent killed (-9) while containers run: their traffic flows on, a
// docker run made meanwhile waits for the agent (dockerd retries a plugin
// it cannot reach) and gets its address once the agent is back. dockerd
// restarted: a container with --restart always comes back on its network
// with its address. A container killed gives its lease back.
func TestLifeCycle(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		hosts := cluster(t, ctx, engine, "dkl"+tag, 2)
		h1, h2 := hosts[0], hosts[1]
		h1.docker(t, ctx, "network", "create", "-d", "meshnet", "--ipam-driver", "meshnet", "--subnet", "10.81.0.0/24", "multi")
		eventually(t, 30*time.Second, "multi in h2's dockerd", func() error {
			if got := h2.networks(t, ctx); len(got) != 1 {
				return fmt.Errorf("h2 has %v", got)
			}
			return nil
		})
		h1.docker(t, ctx, "run", "-d", "--net", "multi", "--name", "c1", "--restart", "always", "--stop-timeout", "1",
			dockerd.BusyboxImage, "sleep", "600")
		h2.docker(t, ctx, "run", "-d", "--net", "multi", "--name", "c2", dockerd.BusyboxImage, "sleep", "600")
		ip1 := h1.docker(t, ctx, "inspect", "-f", "{{.NetworkSettings.Networks.multi.IPAddress}}", "c1")
		ping := func(what string) {
			t.Helper()
			eventually(t, 30*time.Second, what, func() error {
				out, err := h2.d.Docker(ctx, "exec", "c2", "ping", "-c", "1", "-W", "1", ip1)
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		}
		ping("c2 pings c1")

		// The agent on h1 killed: the datapath stays.
		h1.agent.Kill()
		<-h1.agent.Exited()
		if out, err := h2.d.Docker(ctx, "exec", "c2", "ping", "-c", "3", "-i", "0.2", "-W", "1", ip1); err != nil {
			t.Errorf("c2 lost c1 while h1's agent is down: %v\n%s", err, out)
		}
		type result struct {
			out string
			err error
			at  time.Duration
		}
		done := make(chan result, 1)
		t0 := time.Now()
		go func() {
			out, err := h1.d.Docker(ctx, "run", "-d", "--net", "multi", "--name", "c3", dockerd.BusyboxImage, "sleep", "600")
			done <- result{out, err, time.Since(t0)}
		}()
		time.Sleep(3 * time.Second)
		h1.startAgent(t, ctx)
		r := <-done
		if r.err != nil {
			t.Errorf("docker run while the agent was down for 3s: %v\n%s", r.err, r.out)
		} else {
			t.Logf("docker run made while the agent was down completed %s after it started (agent down 3s)", r.at.Round(time.Millisecond))
		}
		ping("c2 pings c1 after h1's agent restarted")

		// dockerd restarted: c1 comes back, same address.
		if err := h1.d.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "c1 running again after dockerd's restart", func() error {
			out, err := h1.d.Docker(ctx, "inspect", "-f", "{{.State.Running}} {{.NetworkSettings.Networks.multi.IPAddress}}", "c1")
			if err != nil || strings.TrimSpace(out) != "true "+ip1 {
				return fmt.Errorf("%v: %q", err, out)
			}
			return nil
		})
		ping("c2 pings c1 after h1's dockerd restarted")

		// A container killed gives its lease back.
		h1.docker(t, ctx, "rm", "-f", "c3")
		eventually(t, 10*time.Second, "c3's lease given back", func() error {
			n, err := h2.api.NetworkInspect(ctx, "multi")
			if err != nil {
				return err
			}
			if len(n.Containers) != 2 {
				return fmt.Errorf("endpoints: %v", n.Containers)
			}
			return nil
		})
	})
}
