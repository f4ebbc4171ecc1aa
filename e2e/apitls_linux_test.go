package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/agent/trust"
	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/cluster"
)

// readmeCommands returns the lines of the first sh block after heading in
// the README.
func readmeCommands(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), heading)
	if !ok {
		t.Fatalf("README has no %q", heading)
	}
	_, after, ok = strings.Cut(after, "```sh\n")
	block, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatalf("README: no sh block after %q", heading)
	}
	return strings.Split(strings.TrimSpace(block), "\n")
}

// Finding 13: `host: tcp://…` was refused, so there was no remote CLI.
// Now it is served with mutual TLS only, with certificates made by the
// README's commands as written: agentctl on a machine of the underlay
// reaches the agent with a client certificate (flags, or the environment
// as Docker's), and gets one line — never an answer — without TLS, with a
// certificate of another CA, or in plain HTTP. An agent told to serve
// tcp:// without TLS does not start.
func TestAPIOverMutualTLS(t *testing.T) {
	ctx := testCtx(t)
	certs := t.TempDir()
	for _, line := range readmeCommands(t, "### The API on tcp://: mutual TLS") {
		cmd := exec.CommandContext(ctx, "sh", "-c", line)
		cmd.Dir = certs
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("README's %q: %v\n%s", line, err, out)
		}
	}
	file := func(n string) string { return filepath.Join(certs, n) }
	const api = "tcp://192.0.2.1:2376"
	c := cluster.NewT(t, cluster.Options{Hosts: 1, Tag: "e2e", AgentArgs: []string{"-H", api, "--tlsverify",
		"--tlscacert", file("ca.pem"), "--tlscert", file("server-cert.pem"), "--tlskey", file("server-key.pem")}})
	out, err := c.AddOutside()
	if err != nil {
		t.Fatal(err)
	}
	// agentctl, run on the outside machine.
	remote := func(env []string, args ...string) cluster.Result {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + out.Path(), c.Bins().Ctl}, args...)...)
		cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir()}, env...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		r := cluster.Result{Stdout: o.String(), Stderr: e.String()}
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			r.Code = ee.ExitCode()
		} else if err != nil {
			r.Code, r.Stderr = -1, r.Stderr+err.Error()
		}
		return r
	}
	ok := func(what string, r cluster.Result) {
		t.Helper()
		if r.Code != 0 || !strings.Contains(r.Stdout, "n1") {
			t.Errorf("%s: %s", what, r)
		}
	}
	refusedLine := func(what string, r cluster.Result, want string) {
		t.Helper()
		line := strings.TrimSpace(r.Stderr)
		if r.Code == 0 || strings.Contains(line, "\n") || !strings.Contains(line, want) || strings.Contains(r.Stdout, "n1") {
			t.Errorf("%s: want a refusal, one line with %q: %s", what, want, r)
		}
		t.Logf("%s: %s", what, line)
	}
	ok("flags", remote(nil, "-H", api, "--tlsverify", "--tlscacert", file("ca.pem"), "--tlscert", file("cert.pem"), "--tlskey", file("key.pem"), "node", "ls"))
	ok("environment", remote([]string{"MESHNET_HOST=" + api, "MESHNET_TLS_VERIFY=1", "MESHNET_CERT_PATH=" + certs}, "node", "ls"))
	refusedLine("no TLS", remote(nil, "-H", api, "node", "ls"), "needs --tlsverify")
	other := t.TempDir()
	if _, err := trust.OpenAuthority(trust.Dir(other), "mallory", cluster.OutsideAddr); err != nil {
		t.Fatal(err)
	}
	refusedLine("another CA's certificate", remote(nil, "-H", api, "--tlsverify", "--tlscacert", file("ca.pem"),
		"--tlscert", filepath.Join(other, "cert.pem"), "--tlskey", filepath.Join(other, "key.pem"), "node", "ls"), "agentctl:")
	refusedLine("no certificate files", remote([]string{"MESHNET_CERT_PATH=/nonexistent"}, "-H", api, "--tlsverify", "node", "ls"), "/nonexistent/ca.pem")

	// Plain HTTP to the port gets no API answer.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: out.Dial}}
	if resp, err := hc.Get("http://192.0.2.1:2376/nodes"); err == nil {
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || bytes.Contains(body[:n], []byte("n1")) {
			t.Errorf("plain HTTP to %s answered %d: %s", api, resp.StatusCode, body[:n])
		}
	}

	// An agent asked to serve tcp:// without TLS does not start.
	cmd := exec.CommandContext(ctx, c.Bins().Agent, "--data-dir", t.TempDir(), "-H", "tcp://127.0.0.1:2377")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	line := strings.TrimSpace(stderr.String())
	if err == nil || strings.Contains(line, "\n") || !strings.Contains(line, "served only with mutual TLS") {
		t.Errorf("meshagent -H tcp:// without TLS: %v, stderr %q", err, line)
	}
}
