package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/testenv/cluster"
)

// snapshot is the state bad input must not change: what every host
// lists, the network state in the store, and the sandbox namespaces.
type snapshot struct {
	Listed    map[string][]string // host → sorted "name id"
	Keys      map[string]string
	Sandboxes []string
}

func takeSnapshot(t *testing.T, c *cluster.Cluster) snapshot {
	t.Helper()
	s := snapshot{Listed: map[string][]string{}}
	for _, h := range c.Hosts() {
		var l []string
		for _, n := range networkLS(t, h) {
			l = append(l, n.Name+" "+n.ID)
		}
		slices.Sort(l)
		s.Listed[h.Node] = l
	}
	kv, err := c.Store()
	if err != nil {
		t.Fatal(err)
	}
	if s.Keys, err = storeKeys(context.Background(), kv); err != nil {
		t.Fatal(err)
	}
	s.Sandboxes, _ = filepath.Glob("/run/netns/" + c.Prefix + "-*")
	return s
}

// Bad input on every command gets one clear line and a non-zero exit, and
// changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCluster(t, store, 2)
		n1 := c.Host(0)
		ctl(t, n1, "network", "create", "-d", "overlay", "--subnet", "10.99.0.0/24", "base")
		sb := c.Name("sb")
		createSandbox(t, n1, "base", sb)
		waitListed(t, c.Host(1), "base")
		before := takeSnapshot(t, c)

		x := c.Name("x")
		cases := []struct {
			args []string
			want string // in the message, if set
		}{
			{args: []string{"network", "create", "-d", "overlay", "--subnet", "10.300.0.0/24", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "--subnet", "not-a-cidr", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "--subnet", "10.98.0.0/24", "--gateway", "10.97.0.1", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "--subnet", "10.98.0.0/24", "--gateway", "not-an-ip", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "--subnet", "10.98.0.0/24", "--ip-range", "10.97.0.0/25", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "--subnet", "10.98.0.0/24", "--aux-address", "r=10.97.0.5", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "--subnet", "10.99.0.128/25", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "base"}, want: "already exists"},
			{args: []string{"network", "create", "-d", "no-such-driver", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "-o", "mtu=abc", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "--scope", "galactic", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "bad/name"}},
			{args: []string{"network", "create", "-d", "overlay"}},
			{args: []string{"network", "create", "-d", "overlay", "bad", "worse"}},
			{args: []string{"network", "create", "--no-such-flag", "bad"}},
			{args: []string{"network", "create", "-d", "overlay", "--subnet"}},
			{args: []string{"network", "inspect", "no-such-network"}},
			{args: []string{"network", "rm", "no-such-network"}},
			{args: []string{"network", "ls", "--filter", "no-equals-sign"}},
			{args: []string{"network", "ls", "--format", "{{.Nope"}},
			{args: []string{"network", "connect", "no-such-network", sb}},
			{args: []string{"network", "connect", "base", c.Name("no-such-sandbox")}},
			{args: []string{"sandbox", "create", "--net", "no-such-network", x}},
			{args: []string{"sandbox", "create", "--net", "base", "--ip", "10.97.0.5", x}},
			{args: []string{"sandbox", "create", "--net", "base", "--ip", "not-an-ip", x}},
			{args: []string{"sandbox", "create", "--net", "base", sb}, want: "already exists"},
			{args: []string{"sandbox", "create", "--net", "base", "--link", c.Name("nobody") + ":db", x}, want: "no such sandbox"},
			{args: []string{"sandbox", "create", "--net", "host", "--net", "base", x}, want: "cannot be combined"},
			{args: []string{"sandbox", "create", "--net", "container:" + c.Name("nobody"), x}, want: "not found"},
			{args: []string{"sandbox", "create", "--net", "none", "--ip", "10.99.0.9", x}, want: "no interface"},
			{args: []string{"sandbox", "create", "--net", "none", "--net", "base", x}, want: "cannot be combined"},
			{args: []string{"network", "create", "-d", "null", "nothing"}, want: "only one instance"},
			{args: []string{"network", "rm", "none"}, want: "pre-defined"},
			{args: []string{"sandbox", "create", "--net", "base", "bad/name"}},
			{args: []string{"sandbox", "create", "--net", "base"}},
			{args: []string{"sandbox", "inspect", c.Name("no-such-sandbox")}},
			{args: []string{"sandbox", "rm", c.Name("no-such-sandbox")}},
			{args: []string{"no-such-command"}},
		}
		for i, tc := range cases {
			h := c.Host(i % 2)
			line := refused(t, h, h.AgentCtl(tc.args...), tc.args...)
			if tc.want != "" && !strings.Contains(line, tc.want) {
				t.Errorf("agentctl %s: %q does not say %q", strings.Join(tc.args, " "), line, tc.want)
			}
			t.Logf("agentctl %s → %q", strings.Join(tc.args, " "), line)
		}

		// No agent at the address.
		args := []string{"-H", "unix://" + filepath.Join(t.TempDir(), "none.sock"), "info"}
		out, err := exec.Command(c.Bins().Ctl, args...).CombinedOutput()
		r := cluster.Result{Stderr: string(out)}
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		}
		line := refused(t, n1, r, args...)
		if !strings.Contains(line, "is it running?") {
			t.Errorf("agentctl with no agent says %q, want \"cannot reach meshagent at …: is it running?\"", line)
		}

		if after := takeSnapshot(t, c); !reflect.DeepEqual(before, after) {
			t.Errorf("bad input changed the state:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

// Bad requests to the API itself get 400 and a JSON message, and create
// nothing.
func TestAPIRefusesBadRequests(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCluster(t, store, 1)
		ctx := testCtx(t)
		n1 := c.Host(0)
		ctl(t, n1, "network", "create", "-d", "overlay", "base")
		before := takeSnapshot(t, c)

		huge := `{"Name":"api-huge","Driver":"overlay","Labels":{"x":"` + strings.Repeat("a", 1<<20+1) + `"}}`
		sbName := c.Name("api")
		cases := []struct {
			what, path, body string
			codes            []int
		}{
			{"malformed JSON", "/networks/create", `{"Name":"api-bad",`, []int{400}},
			{"empty body", "/networks/create", ``, []int{400}},
			{"unknown field", "/networks/create", `{"Name":"api-bad","Driver":"overlay","Bogus":1}`, []int{400}},
			{"wrong type", "/networks/create", `{"Name":123,"Driver":"overlay"}`, []int{400}},
			{"wrong nested type", "/networks/create", `{"Name":"api-bad","Driver":"overlay","IPAM":{"Config":"10.0.0.0/24"}}`, []int{400}},
			{"trailing data", "/networks/create", `{"Name":"api-bad","Driver":"overlay"} {"Name":"x"}`, []int{400}},
			{"not an object", "/networks/create", `["api-bad"]`, []int{400}},
			{"oversized body", "/networks/create", huge, []int{400, 413}},
			{"sandbox unknown field", "/sandboxes/create", `{"Name":"` + sbName + `","Bogus":true}`, []int{400}},
			{"sandbox wrong type", "/sandboxes/create", `{"Name":"` + sbName + `","Networks":"base"}`, []int{400}},
			{"sandbox malformed", "/sandboxes/create", `{"Name":"` + sbName, []int{400}},
			{"connect unknown field", "/networks/base/connect", `{"Container":"x","Nope":1}`, []int{400}},
			{"connect wrong type", "/networks/base/connect", `{"Container":7}`, []int{400}},
		}
		for _, tc := range cases {
			code, body, err := n1.API(ctx, http.MethodPost, tc.path, bytes.NewBufferString(tc.body))
			if err != nil {
				t.Errorf("%s: POST %s: %v", tc.what, tc.path, err)
				continue
			}
			var msg api.Error
			jerr := json.Unmarshal(body, &msg)
			switch {
			case !slices.Contains(tc.codes, code):
				t.Errorf("%s: POST %s answered %d %q, want %v", tc.what, tc.path, code, body, tc.codes)
			case jerr != nil || strings.TrimSpace(msg.Message) == "":
				t.Errorf("%s: POST %s answered %d with %q, want {\"message\": …}", tc.what, tc.path, code, clip(body))
			case strings.Contains(msg.Message, "\n"):
				t.Errorf("%s: message has several lines: %q", tc.what, msg.Message)
			}
			t.Logf("%s: %d %q", tc.what, code, msg.Message)
		}
		if after := takeSnapshot(t, c); !reflect.DeepEqual(before, after) {
			t.Errorf("bad requests changed the state:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

func clip(b []byte) string {
	if len(b) > 200 {
		return fmt.Sprintf("%s… (%d bytes)", b[:200], len(b))
	}
	return string(b)
}
