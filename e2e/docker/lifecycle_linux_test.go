package docker

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/internal/portholder"
	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/dockerd"
	"github.com/meshnet/meshnet/testenv/nshost"
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
		createNetwork(t, ctx, hosts, "--subnet", "10.81.0.0/24", "multi")
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

		// A container killed (SIGKILL to its process) gives its lease back,
		// and one removed too. (c3, without a restart policy, was stopped
		// with dockerd.)
		endpoints := func(what string, want int) {
			t.Helper()
			eventually(t, 10*time.Second, what, func() error {
				n, err := h2.api.NetworkInspect(ctx, "multi")
				if err != nil {
					return err
				}
				if len(n.Containers) != want {
					return fmt.Errorf("endpoints: %v", n.Containers)
				}
				return nil
			})
		}
		h1.docker(t, ctx, "start", "c3")
		endpoints("c3 started again", 3)
		h1.docker(t, ctx, "kill", "-s", "KILL", "c3")
		endpoints("the killed c3's lease given back", 2)
		h1.docker(t, ctx, "start", "c3")
		endpoints("c3 started again", 3)
		h1.docker(t, ctx, "rm", "-f", "c3")
		endpoints("the removed c3's lease given back", 2)
	})
}

// Docker's own clustering gossips on 7946, meshnet's default gossip port:
// a dockerd with the classic overlay's --cluster-store (serf, Docker 20.10)
// and a Swarm manager (memberlist, the current engine). The agent beside
// either stops at start with one sentence that names the holder and the
// setting to change.
func TestGossipPortTaken(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		u := newUnderlay(t, "dkg"+tag)
		h1, err := u.AddHost("h1", netip.MustParsePrefix("192.0.2.1/24"))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		var args []string
		if tag == "l" {
			st, err := u.AddHost("st", netip.MustParsePrefix("192.0.2.100/24"))
			if err != nil {
				t.Fatal(err)
			}
			store, err := dockerd.StartEtcdV2(ctx, st.NS, "192.0.2.100", filepath.Join(dir, "store"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := store.Close(); err != nil {
					t.Error(err)
				}
			})
			args = dockerd.ClusterStoreArgs(store.URL())
		}
		d, err := dockerd.Start(ctx, engine, h1.NS, dockerd.Options{Hostname: "dkg-h1", Dir: filepath.Join(dir, "docker"),
			Bip: "172.31.1.1/24", Args: args})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.Close(); err != nil {
				t.Error(err)
			}
		})
		bins, err := testenv.AgentBinaries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// serf listens once the daemon has an overlay network; Swarm's
		// memberlist once the node is a manager.
		setup := []string{"network", "create", "-d", "overlay", "--subnet", "172.30.9.0/24", "classic"}
		if tag != "l" {
			setup = []string{"swarm", "init", "--advertise-addr", "192.0.2.1"}
		}
		if out, err := d.Docker(ctx, setup...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		eventually(t, 30*time.Second, "Docker's gossip on 7946", func() error {
			if _, _, ok := findHolder(h1, 7946); !ok {
				return errors.New("nothing listens on 7946 yet")
			}
			return nil
		})
		log := filepath.Join(dir, "agent.log")
		p, err := testenv.StartProcess(bins.Agent, []string{"--node-name", "h1", "--data-dir", filepath.Join(dir, "data"),
			"-H", "unix://" + filepath.Join(dir, "agent.sock"), "--bridge", "none", "--cluster-advertise", nshost.HostDev,
			"--docker-plugin", "", "--docker-host", ""}, testenv.ProcessOptions{Log: log, NS: h1.NS})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Exited():
		case <-time.After(30 * time.Second):
			p.Kill()
			t.Fatal("meshagent did not stop with Docker's gossip on its port")
		}
		b, _ := os.ReadFile(log)
		out := strings.TrimSpace(string(b))
		if p.ExitCode() == 0 || !strings.Contains(out, "gossip port 192.0.2.1:7946/tcp is taken (by dockerd, pid") ||
			!strings.Contains(out, "cluster-advertise") {
			t.Errorf("meshagent beside Docker's gossip: exit %d, said:\n%s", p.ExitCode(), out)
		}
		t.Logf("meshagent said: %s", out[strings.LastIndex(out, "\n")+1:])
	})
}

// findHolder looks for the holder of a TCP port in h's namespace.
func findHolder(h *nshost.Host, port int) (pid int, name string, ok bool) {
	_ = h.NS.Do(func() error {
		pid, name, ok = portholder.Find("tcp", port)
		return nil
	})
	return pid, name, ok
}

// dockerd without its agent (started first, or the agent stopped): a
// command that needs the plugin fails, after dockerd's own retries, with
// dockerd's sentence; once the agent is up, it works.
func TestNoAgent(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		h1 := cluster(t, ctx, engine, "dka"+tag, 1)[0]
		if !h1.agent.Stop(10 * time.Second) {
			t.Fatal("meshagent did not stop on SIGTERM")
		}
		t0 := time.Now()
		out, err := h1.d.Docker(ctx, "network", "create", "-d", "meshnet", "--ipam-driver", "meshnet", "multi")
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("docker network create without the agent: %v, %q", err, out)
		}
		t.Logf("docker network create without the agent failed after %s: %v", time.Since(t0).Round(100*time.Millisecond), err)
		if got := h1.networks(t, ctx); len(got) > 0 {
			t.Errorf("networks left: %v", got)
		}
		h1.startAgent(t, ctx)
		h1.docker(t, ctx, "network", "create", "-d", "meshnet", "--ipam-driver", "meshnet", "multi")
	})
}

// A host's dockerd down while the cluster's networks change: once it is
// back, the networks made meanwhile are in it, and one removed meanwhile
// is gone from it.
func TestDockerdDownMeanwhile(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		hosts := cluster(t, ctx, engine, "dkw"+tag, 2)
		h1, h2 := hosts[0], hosts[1]
		createNetwork(t, ctx, hosts, "before")
		if err := h2.d.Halt(); err != nil {
			t.Fatal(err)
		}
		h1.docker(t, ctx, "network", "create", "-d", "meshnet", "--ipam-driver", "meshnet", "meanwhile")
		h1.docker(t, ctx, "network", "rm", "before")
		time.Sleep(2 * time.Second) // the agent on h2 tries, and fails
		if err := h2.d.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 30*time.Second, "h2's dockerd in step", func() error {
			if got := h2.networks(t, ctx); !slices.Equal(got, []string{"meanwhile"}) {
				return fmt.Errorf("h2 has %v", got)
			}
			return nil
		})
		t.Logf("h2's dockerd in step %s after it answered again", took.Round(time.Millisecond))
		h2.docker(t, ctx, "run", "--rm", "--net", "meanwhile", dockerd.BusyboxImage, "true")
	})
}

// dockerd's calls lost: a container removed while the agent is down
// (dockerd tries the plugin for a minute, then removes it anyway) leaves
// its lease taken; the agent, back, finds that dockerd no longer has the
// endpoint and gives the lease back.
func TestSweepAfterLostCalls(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		t.Parallel() // most of it is dockerd's minute of waiting
		hosts := cluster(t, ctx, engine, "dks"+tag, 1)
		h1 := hosts[0]
		createNetwork(t, ctx, hosts, "multi")
		h1.docker(t, ctx, "run", "-d", "--net", "multi", "--name", "c1", dockerd.BusyboxImage, "sleep", "600")
		h1.agent.Kill()
		<-h1.agent.Exited()
		t0 := time.Now()
		h1.docker(t, ctx, "rm", "-f", "c1")
		t.Logf("docker rm -f without the agent took %s", time.Since(t0).Round(time.Second))
		h1.startAgent(t, ctx)
		took := eventually(t, time.Minute, "c1's lease given back", func() error {
			n, err := h1.api.NetworkInspect(ctx, "multi")
			if err != nil {
				return err
			}
			if len(n.Containers) != 0 {
				return fmt.Errorf("endpoints: %v", n.Containers)
			}
			return nil
		})
		t.Logf("the agent gave c1's lease back %s after it started", took.Round(time.Millisecond))
	})
}
