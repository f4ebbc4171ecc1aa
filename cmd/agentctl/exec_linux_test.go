package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// sandboxNetns returns the path of a new network namespace, held by a
// sleeping process for the test's duration.
func sandboxNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("entering namespaces needs root: run the tests as root (make test)")
	}
	holder := exec.Command("sleep", "600")
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := holder.Start(); err != nil {
		t.Fatalf("cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() {
		holder.Process.Kill()
		holder.Wait()
	})
	return fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
}

func TestSandboxExec(t *testing.T) {
	nsPath := sandboxNetns(t)
	etcRoot := t.TempDir()
	old := netnsEtc
	netnsEtc = etcRoot
	t.Cleanup(func() { netnsEtc = old })
	dir := filepath.Join(etcRoot, "sb")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"hostname":         "sandbox-sb\n",
		"resolv.conf":      "nameserver 10.5.0.53\n",
		"not-in-etc-xyzzy": "skipped: /etc has no such file\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hostHostname, err := os.ReadFile("/etc/hostname")
	if err != nil {
		t.Fatalf("the host has no /etc/hostname to bind the sandbox's over: %v", err)
	}

	sandbox := fmt.Sprintf(`{"Id":"5b","Name":"sb","NetNS":%q}`, nsPath)
	srv := newCanned(t, map[string]answer{
		"GET /sandboxes/sb":      {200, sandbox},
		"GET /sandboxes/5b":      {200, sandbox},
		"POST /sandboxes/create": {201, `{"Id":"5b"}`},
		"DELETE /sandboxes/5b":   {204, ""},
	})

	for _, tc := range []struct {
		name           string
		stdin          string
		args           []string
		stdout, stderr string
		status         int
	}{
		{"etc files and sysfs", "", []string{"sandbox", "exec", "sb", "--", "sh", "-c", "cat /etc/hostname /etc/resolv.conf; ls /sys/class/net"},
			"sandbox-sb\nnameserver 10.5.0.53\nlo\n", "", 0},
		{"network namespace", "", []string{"sandbox", "exec", "sb", "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1"},
			"    lo\n", "", 0},
		{"exit status and stderr", "", []string{"sandbox", "exec", "sb", "--", "sh", "-c", "echo out; echo err >&2; exit 7"},
			"out\n", "err\n", 7},
		{"stdin", "hello\n", []string{"sandbox", "exec", "sb", "--", "cat"}, "hello\n", "", 0},
		{"flags belong to the command", "", []string{"sandbox", "exec", "sb", "--", "ls", "-d", "/"}, "/\n", "", 0},
		{"signal", "", []string{"sandbox", "exec", "sb", "--", "sh", "-c", "kill -TERM $$"}, "", "", 128 + 15},
		{"not found", "", []string{"sandbox", "exec", "sb", "--", "no-such-command-xyzzy"},
			"", "agentctl: exec: \"no-such-command-xyzzy\": executable file not found in $PATH\n", 127},
		{"not executable", "", []string{"sandbox", "exec", "sb", "--", "/etc/hostname"},
			"", "agentctl: exec: \"/etc/hostname\": permission denied\n", 126},
		{"missing sandbox", "", []string{"sandbox", "exec", "nope", "--", "true"}, "", "agentctl: no canned answer\n", 125},
	} {
		stdout, stderr, status := agentctl(t, tc.stdin, append([]string{"-H", srv.host}, tc.args...)...)
		if stdout != tc.stdout || stderr != tc.stderr || status != tc.status {
			t.Errorf("%s: status %d, stdout %q, stderr %q; want %d, %q, %q", tc.name, status, stdout, stderr, tc.status, tc.stdout, tc.stderr)
		}
	}

	if now, _ := os.ReadFile("/etc/hostname"); string(now) != string(hostHostname) {
		t.Errorf("the host's /etc/hostname changed to %q", now)
	}

	// run: create, exec, and with --rm remove even though CMD failed.
	before := len(srv.requests())
	stdout, stderr, status := agentctl(t, "", "-H", srv.host, "run", "--rm", "--net", "multi", "sb", "--", "sh", "-c", "cat /etc/hostname; exit 3")
	if status != 3 || stderr != "" || stdout != "sandbox-sb\n" {
		t.Errorf("run: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	var methods []string
	for _, r := range srv.requests()[before:] {
		methods = append(methods, strings.Join(strings.Fields(r)[:2], " "))
	}
	if want := []string{"POST /sandboxes/create", "GET /sandboxes/5b", "DELETE /sandboxes/5b?force=1"}; !slices.Equal(methods, want) {
		t.Errorf("run sent %q, want %q", methods, want)
	}
}
