package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	// sandbox exec re-executes the test binary as its helper.
	if len(os.Args) > 1 && os.Args[1] == execHelperCommand {
		os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// agentctl runs the CLI in-process with stdin and returns what it printed
// and its exit status.
func agentctl(t *testing.T, stdin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var out, errOut bytes.Buffer
	status = run(context.Background(), append([]string{"agentctl"}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), status
}

// canned is an HTTP server on a unix socket that answers "METHOD PATH"
// with a fixed status and body, and records what it was sent. It has no
// API logic; it shows what agentctl sends and how it prints answers.
type canned struct {
	host string

	mu   sync.Mutex
	seen []string // "METHOD REQUEST-URI BODY", guarded by mu
}

type answer struct {
	status int
	body   string
}

func newCanned(t *testing.T, answers map[string]answer) *canned {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	c := &canned{host: "unix://" + socket}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.seen = append(c.seen, strings.TrimSpace(r.Method+" "+r.RequestURI+" "+string(body)))
		c.mu.Unlock()
		a, ok := answers[r.Method+" "+r.URL.EscapedPath()]
		if !ok {
			a = answer{http.StatusNotFound, `{"message":"no canned answer"}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return c
}

func (c *canned) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

func TestAgentNotRunning(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "agent.sock")
	want := "agentctl: cannot reach meshagent at " + host + ": is it running?\n"
	for _, tc := range []struct {
		args   []string
		status int
	}{
		{[]string{"network", "ls"}, 1},
		{[]string{"network", "create", "-d", "overlay", "multi"}, 1},
		{[]string{"network", "inspect", "a", "b"}, 1},
		{[]string{"network", "rm", "a", "b"}, 1},
		{[]string{"network", "prune", "-f"}, 1},
		{[]string{"network", "connect", "n", "sb"}, 1},
		{[]string{"network", "disconnect", "n", "sb"}, 1},
		{[]string{"sandbox", "create", "sb"}, 1},
		{[]string{"sandbox", "ls"}, 1},
		{[]string{"sandbox", "inspect", "sb"}, 1},
		{[]string{"sandbox", "rm", "-f", "a", "b"}, 1},
		{[]string{"sandbox", "exec", "sb", "--", "true"}, 125},
		{[]string{"run", "--rm", "sb", "--", "true"}, 125},
		{[]string{"node", "ls"}, 1},
		{[]string{"info"}, 1},
	} {
		stdout, stderr, status := agentctl(t, "", append([]string{"-H", host}, tc.args...)...)
		if stderr != want || status != tc.status || stdout != "" {
			t.Errorf("%v: status %d, stdout %q, stderr %q; want %d, %q", tc.args, status, stdout, stderr, tc.status, want)
		}
	}

	// The environment names the host too.
	t.Setenv("MESHNET_HOST", host)
	if _, stderr, status := agentctl(t, "", "network", "ls"); stderr != want || status != 1 {
		t.Errorf("MESHNET_HOST: status %d, stderr %q", status, stderr)
	}
}

func TestVersionWithoutAgent(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "agent.sock")
	stdout, stderr, status := agentctl(t, "", "-H", host, "version")
	if !strings.HasPrefix(stdout, "Client:\n Version:     dev\n") || strings.Contains(stdout, "Server:") {
		t.Errorf("stdout %q", stdout)
	}
	if stderr != "agentctl: cannot reach meshagent at "+host+": is it running?\n" || status != 1 {
		t.Errorf("status %d, stderr %q", status, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		want   string
		status int
	}{
		{[]string{"bogus"}, `unknown command "bogus" for "agentctl"`, 1},
		{[]string{"network", "bogus"}, `unknown command "bogus" for "agentctl network"`, 1},
		{[]string{"help", "bogus"}, `unknown command "bogus" for "agentctl"`, 1},
		{[]string{"--bogus"}, "unknown flag: --bogus", 1},
		{[]string{"network", "ls", "--bogus"}, "unknown flag: --bogus", 1},
		{[]string{"network", "ls", "-x"}, "unknown flag: -x", 1},
		{[]string{"network", "create"}, `"agentctl network create" requires exactly 1 argument`, 1},
		{[]string{"network", "create", "a", "b"}, `"agentctl network create" requires exactly 1 argument`, 1},
		{[]string{"network", "create", "n", "--subnet"}, "flag needs an argument: --subnet", 1},
		{[]string{"network", "create", "-o", "mtu", "n"}, `invalid --opt "mtu": expected KEY=VALUE`, 1},
		{[]string{"network", "create", "--subnet", "10.0.0.0/24", "--gateway", "10.9.0.1", "n"}, "no matching subnet for gateway 10.9.0.1", 1},
		{[]string{"network", "ls", "x"}, `"agentctl network ls" accepts no arguments`, 1},
		{[]string{"network", "ls", "-f", "name"}, `bad format of filter "name": expected KEY=VALUE`, 1},
		{[]string{"network", "rm"}, `"agentctl network rm" requires at least 1 argument`, 1},
		{[]string{"network", "inspect"}, `"agentctl network inspect" requires at least 1 argument`, 1},
		{[]string{"network", "connect", "n"}, `"agentctl network connect" requires exactly 2 arguments`, 1},
		{[]string{"network", "connect", "--ip", "x", "n", "sb"}, `invalid IPv4 address "x"`, 1},
		{[]string{"network", "disconnect", "n"}, `"agentctl network disconnect" requires exactly 2 arguments`, 1},
		{[]string{"network", "prune", "--force=maybe"}, `invalid boolean value "maybe" for -force: parse error`, 1},
		{[]string{"sandbox", "create"}, `"agentctl sandbox create" requires exactly 1 argument`, 1},
		{[]string{"sandbox", "create", "--link", ":x", "sb"}, `invalid --link ":x": expected SANDBOX:ALIAS`, 1},
		{[]string{"sandbox", "exec", "sb"}, `"agentctl sandbox exec" requires at least 2 arguments`, 125},
		{[]string{"sandbox", "exec", "sb", "--"}, `"agentctl sandbox exec" requires at least 2 arguments`, 125},
		{[]string{"run", "sb"}, `"agentctl run" requires at least 2 arguments`, 125},
		{[]string{"run", "--bogus", "sb", "true"}, "unknown flag: --bogus", 125},
		{[]string{"-H", "localhost:80", "info"}, `invalid host "localhost:80": expected unix:///PATH or tcp://HOST:PORT`, 1},
		{[]string{"node", "ls", "--format", "{{.Name"}, `invalid --format template: format:1: unclosed action`, 1},
		{[]string{"completion", "fish"}, `no completion for shell "fish": only bash`, 1},
	} {
		stdout, stderr, status := agentctl(t, "", tc.args...)
		want := "agentctl: " + tc.want + "\n"
		if stderr != want || status != tc.status || stdout != "" {
			t.Errorf("%v: status %d, stdout %q, stderr %q; want %d, %q", tc.args, status, stdout, stderr, tc.status, want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		nil, {"-h"}, {"help"}, {"network"}, {"network", "--help"}, {"help", "network", "create"},
		{"network", "create", "-h"}, {"sandbox", "exec", "-h"}, {"run", "--help"},
	} {
		stdout, stderr, status := agentctl(t, "", args...)
		if status != 0 || stderr != "" || !strings.Contains(stdout, "USAGE:") {
			t.Errorf("%v: status %d, stderr %q, stdout %q", args, status, stderr, stdout)
		}
	}
	stdout, _, _ := agentctl(t, "", "help", "network", "create")
	for _, flag := range []string{"--driver", "--subnet", "--gateway", "--ip-range", "--aux-address", "--ipam-driver", "--ipam-opt",
		"--ipv6", "--internal", "--attachable", "--ingress", "--label", "--opt", "-o", "--scope", "--config-only", "--config-from"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("network create help lacks %s", flag)
		}
	}
	if stdout, _, status := agentctl(t, "", "completion", "bash"); status != 0 || !strings.Contains(stdout, "complete -o") {
		t.Errorf("completion: %d %q", status, stdout)
	}
}

func TestServerErrors(t *testing.T) {
	srv := newCanned(t, map[string]answer{
		"POST /networks/create": {409, `{"message":"network \"multi\" already exists"}`},
		"DELETE /networks/a":    {204, ""},
		"DELETE /networks/c":    {204, ""},
		"DELETE /networks/b":    {409, `{"message":"network b has active endpoints"}`},
		"GET /networks/x":       {200, `{"Name":"x","Id":"1234"}`},
		"GET /info":             {200, `{"Node": 5}`},
		"GET /nodes":            {503, "{\"message\":\"cluster store unreachable:\\nconnection refused\"}"},
	})
	for _, tc := range []struct {
		args           []string
		stdout, stderr string
	}{
		{[]string{"network", "create", "-d", "overlay", "multi"}, "", `agentctl: network "multi" already exists` + "\n"},
		{[]string{"network", "rm", "a", "b", "missing", "c"}, "a\nc\n",
			"agentctl: network b has active endpoints\nagentctl: no canned answer\n"},
		{[]string{"network", "inspect", "--format", "{{.Name}}", "x", "y"}, "x\n", "agentctl: no canned answer\n"},
		{[]string{"info"}, "", "agentctl: malformed response from meshagent to GET /info: not the expected JSON\n"},
		{[]string{"node", "ls"}, "", "agentctl: cluster store unreachable: connection refused\n"},
	} {
		stdout, stderr, status := agentctl(t, "", append([]string{"-H", srv.host}, tc.args...)...)
		if stdout != tc.stdout || stderr != tc.stderr || status != 1 {
			t.Errorf("%v: status %d\nstdout %q\nstderr %q\nwant %q, %q", tc.args, status, stdout, stderr, tc.stdout, tc.stderr)
		}
	}
}

func TestRequestsSent(t *testing.T) {
	srv := newCanned(t, map[string]answer{
		"POST /networks/create":           {201, `{"Id":"f00d"}`},
		"GET /networks":                   {200, `[]`},
		"POST /networks/multi/connect":    {200, ""},
		"POST /networks/multi/disconnect": {200, ""},
		"POST /sandboxes/create":          {201, `{"Id":"5b","Warning":"hostname ignored"}`},
		"DELETE /sandboxes/sb":            {204, ""},
	})
	for _, tc := range []struct {
		args           []string
		stdout, stderr string
		request        string
	}{
		{
			[]string{"network", "create", "multi", "-d", "overlay", "--subnet", "10.5.0.0/24", "--gateway", "10.5.0.1",
				"--ip-range", "10.5.0.128/25", "--aux-address", "r=10.5.0.2", "--attachable", "--label", "a=b", "-o", "k=v", "--scope", "global"},
			"f00d\n", "",
			`POST /networks/create {"Name":"multi","Driver":"overlay","Scope":"global","EnableIPv6":false,` +
				`"IPAM":{"Driver":"","Options":null,"Config":[{"Subnet":"10.5.0.0/24","IPRange":"10.5.0.128/25","Gateway":"10.5.0.1","AuxiliaryAddresses":{"r":"10.5.0.2"}}]},` +
				`"Internal":false,"Attachable":true,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"k":"v"},"Labels":{"a":"b"}}`,
		},
		{
			[]string{"network", "create", "plain"}, "f00d\n", "",
			`POST /networks/create {"Name":"plain","Driver":"bridge","Scope":"","EnableIPv6":false,"IPAM":null,` +
				`"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":null,"Labels":null}`,
		},
		{
			[]string{"network", "ls", "-f", "driver=overlay", "-f", "name=a b"}, "NETWORK ID   NAME   DRIVER   SCOPE\n", "",
			`GET /networks?filters=%7B%22driver%22%3A%5B%22overlay%22%5D%2C%22name%22%3A%5B%22a+b%22%5D%7D`,
		},
		{
			[]string{"network", "connect", "--alias", "web", "--ip", "10.5.0.7", "--link", "db", "multi", "sb"}, "", "",
			`POST /networks/multi/connect {"Container":"sb","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.5.0.7","IPv6Address":""},"Aliases":["web"],"Links":["db:db"]}}`,
		},
		{
			[]string{"network", "connect", "multi", "sb"}, "", "",
			`POST /networks/multi/connect {"Container":"sb","EndpointConfig":null}`,
		},
		{
			[]string{"network", "disconnect", "-f", "multi", "sb"}, "", "",
			`POST /networks/multi/disconnect {"Container":"sb","Force":true}`,
		},
		{
			[]string{"sandbox", "create", "--net", "multi", "--net", "other", "--ip", "10.5.0.9", "--network-alias", "w",
				"--dns", "10.0.0.53", "-p", "8080:80", "-P", "--expose", "443", "--hostname", "h", "sb"},
			"5b\n", "WARNING: hostname ignored\n",
			`POST /sandboxes/create {"Name":"sb","Hostname":"h","NetNS":"","Networks":[{"Network":"multi","IP":"10.5.0.9","IP6":"",` +
				`"Aliases":["w"],"Links":null},{"Network":"other","IP":"","IP6":"","Aliases":null,"Links":null}],"Dns":["10.0.0.53"],` +
				`"DnsOptions":null,"DnsSearch":null,"Publish":["8080:80"],"PublishAll":true,"Expose":["443"]}`,
		},
		{[]string{"sandbox", "rm", "-f", "sb"}, "sb\n", "", `DELETE /sandboxes/sb?force=1`},
		{[]string{"sandbox", "rm", "sb"}, "sb\n", "", `DELETE /sandboxes/sb`},
	} {
		before := len(srv.requests())
		stdout, stderr, status := agentctl(t, "", append([]string{"-H", srv.host}, tc.args...)...)
		if status != 0 || stdout != tc.stdout || stderr != tc.stderr {
			t.Errorf("%v: status %d, stdout %q, stderr %q", tc.args, status, stdout, stderr)
		}
		if got := srv.requests()[before:]; len(got) != 1 || got[0] != tc.request {
			t.Errorf("%v: sent %q\nwant %q", tc.args, got, tc.request)
		}
	}
}

func TestPrune(t *testing.T) {
	srv := newCanned(t, map[string]answer{
		"POST /networks/prune": {200, `{"NetworksDeleted":["old1","old2"]}`},
	})
	const prompt = "WARNING! This will remove all custom networks not used by any sandbox.\nAre you sure you want to continue? [y/N] "
	for _, tc := range []struct {
		stdin   string
		args    []string
		stdout  string
		request bool
	}{
		{"", nil, prompt, false},
		{"n\n", nil, prompt, false},
		{"y\n", nil, prompt + "Deleted Networks:\nold1\nold2\n", true},
		{"", []string{"-f"}, "Deleted Networks:\nold1\nold2\n", true},
	} {
		before := len(srv.requests())
		stdout, stderr, status := agentctl(t, tc.stdin, append([]string{"-H", srv.host, "network", "prune"}, tc.args...)...)
		if status != 0 || stderr != "" || stdout != tc.stdout {
			t.Errorf("stdin %q %v: status %d, stdout %q, stderr %q", tc.stdin, tc.args, status, stdout, stderr)
		}
		if sent := len(srv.requests()) > before; sent != tc.request {
			t.Errorf("stdin %q %v: request sent %v", tc.stdin, tc.args, sent)
		}
	}
}

func TestCannedJSONIsValid(t *testing.T) {
	// The canned bodies of the output tests are real api values.
	for _, body := range []string{networksJSON, sandboxesJSON, nodesJSON} {
		if !json.Valid([]byte(body)) {
			t.Fatalf("invalid canned JSON %s", body)
		}
	}
}
