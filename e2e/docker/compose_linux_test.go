package docker

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/dockerd"
)

// compose runs docker-compose with args in dir against h's dockerd, with
// env added; it fails the test on an error.
func compose(t *testing.T, ctx context.Context, d *dockerd.Daemon, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "docker-compose", args...)
	cmd.Dir, cmd.Env = dir, append(d.Env(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// The repository's docker-compose.yml, as its comment says to use it, on a
// dockerd with no registry: the image built from scratch out of the static
// binaries (make image's files), two privileged agents on the embedded
// store, an overlay network, a sandbox in each, and a ping by name across
// them.
func TestComposeTrial(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) { composeTrial(t, ctx, engine, tag) })
}

func composeTrial(t *testing.T, ctx context.Context, engine dockerd.Engine, tag string) {
	bins, err := testenv.AgentBinaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u := newUnderlay(t, "dkt"+tag)
	h, err := u.AddHost("h1", netip.MustParsePrefix("192.0.2.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d, err := dockerd.Start(ctx, engine, h.NS, dockerd.Options{Hostname: "dkt" + tag + "-h1", Dir: filepath.Join(dir, "docker"), Bip: "172.31.1.1/24"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})

	// The build context: the repository's files and what make image puts
	// under build/image.
	proj := filepath.Join(dir, "meshnet")
	img := filepath.Join(proj, "build", "image")
	for _, p := range []string{filepath.Join(img, "usr", "local", "bin"), filepath.Join(img, "bin")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for src, dst := range map[string]string{
		filepath.Join(testenv.RepoRoot(), "Dockerfile"):         filepath.Join(proj, "Dockerfile"),
		filepath.Join(testenv.RepoRoot(), "docker-compose.yml"): filepath.Join(proj, "docker-compose.yml"),
		filepath.Join(testenv.RepoRoot(), ".dockerignore"):      filepath.Join(proj, ".dockerignore"),
		bins.Agent:     filepath.Join(img, "usr", "local", "bin", "meshagent"),
		bins.Ctl:       filepath.Join(img, "usr", "local", "bin", "agentctl"),
		"/bin/busybox": filepath.Join(img, "bin", "busybox"),
	} {
		if err := copyFile(src, dst); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"sh", "ip", "ping", "wget", "nc", "cat", "ls", "mount", "sleep", "mv"} {
		if err := os.Symlink("busybox", filepath.Join(img, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}

	env := []string{"UNDERLAY=198.51.100", "COMPOSE_PROJECT_NAME=trial"}
	t0 := time.Now()
	compose(t, ctx, d, proj, env, "up", "-d", "--build")
	t.Cleanup(func() {
		cmd := exec.Command("docker-compose", "down", "-v", "-t", "1")
		cmd.Dir, cmd.Env = proj, append(d.Env(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			cmd := exec.Command("docker-compose", "logs", "--tail", "40")
			cmd.Dir, cmd.Env = proj, append(d.Env(), env...)
			out, _ := cmd.CombinedOutput()
			t.Logf("docker-compose logs:\n%s", out)
		}
	})
	exec := func(args ...string) (string, error) {
		cmd := execCommand(ctx, "docker-compose", append([]string{"exec", "-T"}, args...)...)
		cmd.Dir, cmd.Env = proj, append(d.Env(), env...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	eventually(t, 2*time.Minute, "n1 and n2 in the cluster", func() error {
		out, err := exec("n1", "agentctl", "node", "ls")
		if err != nil || !strings.Contains(out, "n1") || !strings.Contains(out, "n2") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	t.Logf("two agents up in compose %s after docker-compose up", time.Since(t0).Round(time.Millisecond))
	for _, args := range [][]string{
		{"n1", "agentctl", "network", "create", "-d", "overlay", "multi"},
		{"n1", "agentctl", "sandbox", "create", "--net", "multi", "c1"},
		{"n2", "agentctl", "sandbox", "create", "--net", "multi", "c2"},
	} {
		if out, err := exec(args...); err != nil {
			t.Fatalf("docker-compose exec %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	eventually(t, 30*time.Second, "c1 in n1 pings c2 in n2 by name", func() error {
		out, err := exec("n1", "agentctl", "sandbox", "exec", "c1", "--", "ping", "-c", "1", "-W", "1", "c2")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

var execCommand = exec.CommandContext

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, fi.Mode().Perm())
}

// A compose project of a user's on two hosts: the web service on h1 and
// its client on h2 find each other by service name on an external meshnet
// network; a network of the project's own with the meshnet driver is
// made and removed by compose.
func TestComposeProject(t *testing.T) {
	ctx := testCtx(t)
	forEngine(t, ctx, func(t *testing.T, engine dockerd.Engine, tag string) {
		hosts := cluster(t, ctx, engine, "dkc2"+tag, 2)
		h1, h2 := hosts[0], hosts[1]
		createNetwork(t, ctx, hosts, "multi")
		dir := t.TempDir()
		if err := copyFile(filepath.Join("testdata", "compose-web.yml"), filepath.Join(dir, "docker-compose.yml")); err != nil {
			t.Fatal(err)
		}
		compose(t, ctx, h1.d, dir, nil, "-p", "one", "up", "-d", "web")
		compose(t, ctx, h2.d, dir, nil, "-p", "two", "up", "-d", "client")
		eventually(t, 30*time.Second, "client on h2 fetches http://web/ on h1", func() error {
			cmd := execCommand(ctx, "docker-compose", "-p", "two", "exec", "-T", "client", "wget", "-q", "-O-", "http://web/")
			cmd.Dir, cmd.Env = dir, h2.d.Env()
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "hello-from-web") {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		// compose makes every network of a project (one_own, two_own):
		// each is the cluster's, on both hosts.
		for _, h := range hosts {
			eventually(t, 30*time.Second, "the projects' networks in "+h.name+"'s dockerd", func() error {
				if got := h.networks(t, ctx); !slices.Equal(got, []string{"multi", "one_own", "two_own"}) {
					return fmt.Errorf("%s has %v", h.name, got)
				}
				return nil
			})
		}
		compose(t, ctx, h2.d, dir, nil, "-p", "two", "down", "-t", "1")
		compose(t, ctx, h1.d, dir, nil, "-p", "one", "down", "-t", "1")
		for _, h := range hosts {
			eventually(t, 30*time.Second, "only multi left in "+h.name+"'s dockerd", func() error {
				if got := h.networks(t, ctx); len(got) != 1 || got[0] != "multi" {
					return fmt.Errorf("%s has %v", h.name, got)
				}
				return nil
			})
		}
	})
}
