// Package docker tests meshnet as Docker's network and IPAM plugin on real
// engines (testenv/dockerd): namespace hosts each running a dockerd and a
// meshagent inside that dockerd's namespaces, real containers, real
// traffic across VXLAN.
package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/agent/client"
	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/dockerd"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// dockerDNS is the agent's docker-dns (its default).
const dockerDNS = "169.254.53.53"

// host is a namespace host with a dockerd and a meshagent serving it.
type host struct {
	name  string
	h     *nshost.Host
	d     *dockerd.Daemon
	agent *testenv.Process
	api   *client.Client
	dir   string
	log   string // the agent's log
	bin   string // meshagent
	store string // its cluster-store
	// tokenFile is its cluster-token-file (hosts but the first).
	tokenFile string
	// gossipPort is the agents' gossip port (0: the default, 7946).
	gossipPort int
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// forEngine runs fn as a subtest on each Docker engine: legacy (Debian's
// 20.10) and modern (Docker 29, built from moby's module); tag tells
// them apart in namespace names.
func forEngine(t *testing.T, ctx context.Context, fn func(t *testing.T, engine dockerd.Engine, tag string)) {
	for _, e := range []struct {
		name string
		get  func(context.Context) (dockerd.Engine, error)
	}{{"legacy", dockerd.Legacy}, {"modern", dockerd.Modern}} {
		t.Run(e.name, func(t *testing.T) {
			engine, err := e.get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, engine, e.name[:1])
		})
	}
}

// cluster makes hosts h1…hN on one underlay (192.0.2.N), each with a
// dockerd of the engine and a meshagent in its namespaces: h1's agent
// serves the embedded store, the others use it. Everything is removed at
// the end of the test: containers and daemons first (their plugin calls
// need the agents), then the agents, then the namespaces.
func cluster(t *testing.T, ctx context.Context, engine dockerd.Engine, tag string, n int) []*host {
	t.Helper()
	bins, err := testenv.AgentBinaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u := newUnderlay(t, tag)
	var hosts []*host
	for i := range n {
		name := fmt.Sprintf("h%d", i+1)
		nh, err := u.AddHost(name, netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		// The one setting meshnet asks of dockerd: its dns is the agent's
		// docker-dns, where names of containers on other hosts are
		// answered.
		d, err := dockerd.Start(ctx, engine, nh.NS, dockerd.Options{Hostname: tag + "-" + name, Dir: filepath.Join(dir, "docker"),
			Bip: fmt.Sprintf("172.31.%d.1/24", i+1), DNS: []string{dockerDNS}})
		if err != nil {
			t.Fatal(err)
		}
		hst := &host{name: name, h: nh, d: d, dir: dir, log: filepath.Join(dir, "agent.log")}
		t.Cleanup(func() { hst.close(t) })
		if _, err := dockerd.ImportBusybox(ctx, d); err != nil {
			t.Fatal(err)
		}
		store := "embedded"
		if i > 0 {
			// The other hosts join n1's store with its join token.
			store = "etcd://192.0.2.1:2379"
			hst.tokenFile = filepath.Join(hosts[0].dir, "data", "tls", "join-token")
		}
		hst.bin, hst.store = bins.Agent, store
		hst.startAgent(t, ctx)
		hosts = append(hosts, hst)
	}
	return hosts
}

// newUnderlay makes the hosts' switch, removed with every namespace of
// the tag's prefix at the end of the test.
func newUnderlay(t testing.TB, tag string) *nshost.Underlay {
	t.Helper()
	prefix := nshost.Prefix(tag)
	u, err := nshost.NewUnderlay(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := errors.Join(u.Close(), nshost.RemoveAll(prefix)); err != nil {
			t.Error(err)
		}
	})
	return u
}

// createNetwork runs `docker network create -d meshnet --ipam-driver
// meshnet ARGS` on the first host and waits until every host's dockerd
// has the network (the last argument); it returns how long that took.
func createNetwork(t *testing.T, ctx context.Context, hosts []*host, args ...string) time.Duration {
	t.Helper()
	name := args[len(args)-1]
	hosts[0].docker(t, ctx, append([]string{"network", "create", "-d", "meshnet", "--ipam-driver", "meshnet"}, args...)...)
	t0 := time.Now()
	for _, h := range hosts {
		eventually(t, 30*time.Second, "network "+name+" in "+h.name+"'s dockerd", func() error {
			if !slices.Contains(h.networks(t, ctx), name) {
				return fmt.Errorf("%s has %v", h.name, h.networks(t, ctx))
			}
			return nil
		})
	}
	return time.Since(t0)
}

func (h *host) startAgent(t testing.TB, ctx context.Context) {
	t.Helper()
	bin, store := h.bin, h.store
	sock := filepath.Join(h.dir, "agent.sock")
	args := []string{"--node-name", h.name, "--data-dir", filepath.Join(h.dir, "data"), "-H", "unix://" + sock,
		"--bridge", "none", "--cluster-store", store, "--cluster-advertise", nshost.HostDev + ":" + strconv.Itoa(cmp.Or(h.gossipPort, 7946)),
		"--docker-plugin", filepath.Join(h.d.PluginDir, "meshnet.sock"), "--docker-host", h.d.Socket, "--log-level", "debug"}
	if h.tokenFile != "" {
		args = append(args, "--cluster-token-file", h.tokenFile)
	}
	// In the host's network namespace and the test's mount namespace: the
	// agent never opens Docker's sandboxes (Docker moves the interfaces),
	// so it needs none of dockerd's mounts, and outlives a restart of it.
	p, err := testenv.StartProcess(bin, args, testenv.ProcessOptions{Log: h.log, NS: h.h.NS})
	if err != nil {
		t.Fatal(err)
	}
	h.agent = p
	if h.api == nil {
		if h.api, err = client.New("unix://" + sock); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := h.api.Info(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("meshagent on %s does not answer: %v\n%s", h.name, err, h.tail(30))
		}
		select {
		case <-p.Exited():
			t.Fatalf("meshagent on %s exited:\n%s", h.name, h.tail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, err := os.Stat(filepath.Join(h.d.PluginDir, "meshnet.sock")); err != nil {
		t.Fatalf("meshagent on %s serves no plugin socket: %v\n%s", h.name, err, h.tail(30))
	}
}

// close stops the daemon (removing its containers, which calls the
// plugin), then the agent.
func (h *host) close(t testing.TB) {
	if t.Failed() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		h.dump(t, ctx, "")
		cancel()
	}
	if err := h.d.Close(); err != nil {
		t.Errorf("closing dockerd on %s: %v", h.name, err)
	}
	if h.agent != nil {
		if !h.agent.Stop(10 * time.Second) {
			t.Errorf("meshagent on %s did not stop on SIGTERM", h.name)
		}
	}
	if h.api != nil {
		h.api.Close()
	}
	if t.Failed() {
		t.Logf("meshagent log of %s:\n%s", h.name, h.tail(60))
	}
}

func (h *host) tail(n int) string {
	b, err := os.ReadFile(h.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// docker runs the docker CLI against h's daemon and fails the test on an
// error.
func (h *host) docker(t testing.TB, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := h.d.Docker(ctx, args...)
	if err != nil {
		t.Fatalf("%s: docker %s: %v\n%s\nagent log:\n%s", h.name, strings.Join(args, " "), err, out, h.tail(20))
	}
	return strings.TrimSpace(out)
}

// eventually retries fn every 100ms until it succeeds or d has passed.
func eventually(t testing.TB, d time.Duration, what string, fn func() error) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		err := fn()
		if err == nil {
			return time.Since(t0)
		}
		if time.Since(t0) > d {
			t.Fatalf("%s: still not after %s: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// networks lists the names of h's Docker networks of the meshnet driver.
func (h *host) networks(t testing.TB, ctx context.Context) []string {
	out := h.docker(t, ctx, "network", "ls", "--filter", "driver=meshnet", "--format", "{{.Name}}")
	if out == "" {
		return nil
	}
	return strings.Fields(out)
}

// dump logs what the kernel of h (and of its container c, if not "")
// holds, for the analysis of a failure.
func (h *host) dump(t testing.TB, ctx context.Context, c string) {
	t.Helper()
	for _, args := range [][]string{{"ip", "-br", "link"}, {"ip", "-br", "addr"}, {"bridge", "fdb", "show"}, {"ip", "neigh"}, {"nft", "list", "ruleset"}} {
		out, err := h.d.Command(ctx, args[0], args[1:]...).CombinedOutput()
		t.Logf("%s: %s: %v\n%s", h.name, strings.Join(args, " "), err, out)
	}
	if c != "" {
		for _, args := range [][]string{{"ip", "addr"}, {"ip", "route"}, {"ip", "neigh"}} {
			out, err := h.d.Docker(ctx, append([]string{"exec", c}, args...)...)
			t.Logf("%s in %s: %s: %v\n%s", c, h.name, strings.Join(args, " "), err, out)
		}
	}
}
