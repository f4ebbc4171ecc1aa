package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/agent/api"
)

// request is what a canned server saw.
type request struct {
	Method, URI, ContentType string
	Body                     []byte
}

// serve starts an HTTP server on a unix socket in a temporary directory
// that records each request and answers every one with status and body.
// It has no API logic: it only lets the tests check what the client sends
// and how it reads what comes back.
func serve(t *testing.T, status int, contentType, body string) (*Client, <-chan request) {
	t.Helper()
	seen := make(chan request, 16)
	socket := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		seen <- request{r.Method, r.RequestURI, r.Header.Get("Content-Type"), data}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := New("unix://" + socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, seen
}

func TestNewHosts(t *testing.T) {
	for _, host := range []string{"", "unix:///run/x.sock", "tcp://127.0.0.1:2375", "tcp://agent.example:80/", "tcp://[::1]:9"} {
		if _, err := New(host); err != nil {
			t.Errorf("New(%q): %v", host, err)
		}
	}
	for _, host := range []string{"unix://", "unix://rel/path", "tcp://host", "tcp://:80", "tcp://h:0", "tcp://h:http", "http://h:1", "/run/x.sock", "x"} {
		_, err := New(host)
		if err == nil {
			t.Errorf("New(%q) accepted", host)
			continue
		}
		want := `invalid host "` + host + `": expected unix:///PATH or tcp://HOST:PORT`
		if err.Error() != want {
			t.Errorf("New(%q) = %q, want %q", host, err, want)
		}
	}
}

func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	refused := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(refused, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.sock"), refused} {
		c, err := New("unix://" + path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.NetworkList(context.Background(), nil)
		want := "cannot reach meshagent at unix://" + path + ": is it running?"
		if err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("errors.Is(%v, ErrUnreachable) is false", err)
		}
	}
}

func TestErrorResponses(t *testing.T) {
	for _, tc := range []struct {
		status      int
		contentType string
		body        string
		want        string
		notFound    bool
		conflict    bool
	}{
		{404, "application/json", `{"message":"network \"x\" not found"}`, `network "x" not found`, true, false},
		{409, "application/json", `{"message":"network \"multi\" already exists"}` + "\n", `network "multi" already exists`, false, true},
		{503, "application/json", `{"message":"cluster store unreachable"}`, "cluster store unreachable", false, false},
		{404, "text/plain; charset=utf-8", "404 page not found\n", "meshagent answered 404 Not Found: 404 page not found", true, false},
		{500, "application/json", `{"msg":`, "meshagent answered 500 Internal Server Error", false, false},
		{400, "text/html", "<html>bad</html>", "meshagent answered 400 Bad Request", false, false},
	} {
		c, _ := serve(t, tc.status, tc.contentType, tc.body)
		_, err := c.NetworkInspect(context.Background(), "x")
		var apiErr *Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("%d %s: error %v is not *Error", tc.status, tc.body, err)
		}
		if apiErr.Status != tc.status || err.Error() != tc.want {
			t.Errorf("%d %s: got %d %q, want %q", tc.status, tc.body, apiErr.Status, err, tc.want)
		}
		if IsNotFound(err) != tc.notFound || IsConflict(err) != tc.conflict {
			t.Errorf("%d: IsNotFound %v IsConflict %v", tc.status, IsNotFound(err), IsConflict(err))
		}
	}
}

func TestMalformedResponse(t *testing.T) {
	for _, body := range []string{`{"Name": 12}`, `[{"Name":"x"}]`, `not json`, `{"Name":"x"`} {
		c, _ := serve(t, 200, "application/json", body)
		_, err := c.NetworkInspect(context.Background(), "x")
		want := "malformed response from meshagent to GET /networks/x: not the expected JSON"
		if err == nil || err.Error() != want {
			t.Errorf("body %s: error %v, want %q", body, err, want)
		}
	}
}

func TestRequests(t *testing.T) {
	ctx := context.Background()
	c, seen := serve(t, 200, "application/json", `{"Id":"abc"}`)
	next := func() request { return <-seen }

	if _, err := c.NetworkList(ctx, map[string][]string{"name": {"a", "b"}, "driver": {"overlay"}}); err == nil {
		t.Error("a list answered with an object decoded without error")
	}
	r := next()
	if r.Method != "GET" || !strings.HasPrefix(r.URI, "/networks?filters=") {
		t.Fatalf("list: %s %s", r.Method, r.URI)
	}
	var filters map[string][]string
	if err := json.Unmarshal([]byte(mustUnescape(t, strings.TrimPrefix(r.URI, "/networks?filters="))), &filters); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(filters, map[string][]string{"name": {"a", "b"}, "driver": {"overlay"}}) {
		t.Errorf("filters %v", filters)
	}

	resp, err := c.NetworkCreate(ctx, api.NetworkCreate{Name: "multi", Driver: "overlay"})
	if err != nil || resp.ID != "abc" {
		t.Fatalf("create: %v %v", resp, err)
	}
	r = next()
	var create api.NetworkCreate
	if err := json.Unmarshal(r.Body, &create); err != nil || create.Name != "multi" || r.ContentType != "application/json" {
		t.Errorf("create: %s %s %q: %v", r.URI, r.Body, r.ContentType, err)
	}
	if r.Method != "POST" || r.URI != "/networks/create" {
		t.Errorf("create: %s %s", r.Method, r.URI)
	}

	for _, tc := range []struct {
		call         func() error
		method, uri  string
		bodyContains string
	}{
		{func() error { _, err := c.NetworkInspect(ctx, "a/b c"); return err }, "GET", "/networks/a%2Fb%20c", ""},
		{func() error { return c.NetworkRemove(ctx, "multi") }, "DELETE", "/networks/multi", ""},
		{func() error { _, err := c.NetworkPrune(ctx); return err }, "POST", "/networks/prune", ""},
		{func() error {
			return c.NetworkConnect(ctx, "multi", api.NetworkConnect{Container: "sb1"})
		}, "POST", "/networks/multi/connect", `"Container":"sb1"`},
		{func() error {
			return c.NetworkDisconnect(ctx, "multi", api.NetworkDisconnect{Container: "sb1", Force: true})
		}, "POST", "/networks/multi/disconnect", `"Force":true`},
		{func() error { _, err := c.SandboxCreate(ctx, api.SandboxCreate{Name: "sb1"}); return err }, "POST", "/sandboxes/create", `"Name":"sb1"`},
		{func() error { _, err := c.SandboxInspect(ctx, "sb1"); return err }, "GET", "/sandboxes/sb1", ""},
		{func() error { return c.SandboxRemove(ctx, "sb1", false) }, "DELETE", "/sandboxes/sb1", ""},
		{func() error { return c.SandboxRemove(ctx, "sb1", true) }, "DELETE", "/sandboxes/sb1?force=1", ""},
		{func() error { _, err := c.Info(ctx); return err }, "GET", "/info", ""},
		{func() error { _, err := c.Version(ctx); return err }, "GET", "/version", ""},
	} {
		if err := tc.call(); err != nil {
			t.Errorf("%s %s: %v", tc.method, tc.uri, err)
			continue
		}
		r := next()
		if r.Method != tc.method || r.URI != tc.uri || !strings.Contains(string(r.Body), tc.bodyContains) {
			t.Errorf("got %s %s %s, want %s %s with %s", r.Method, r.URI, r.Body, tc.method, tc.uri, tc.bodyContains)
		}
	}

	if _, err := c.NetworkInspect(ctx, ""); err == nil || err.Error() != "empty network name or ID" {
		t.Errorf("empty name: %v", err)
	}
}

func TestLists(t *testing.T) {
	ctx := context.Background()
	c, _ := serve(t, 200, "application/json", `[{"Name":"a","Id":"1"},{"Name":"b","Id":"2"}]`)
	networks, err := c.NetworkList(ctx, nil)
	if err != nil || len(networks) != 2 || networks[1].ID != "2" {
		t.Errorf("networks %+v %v", networks, err)
	}
	sandboxes, err := c.SandboxList(ctx)
	if err != nil || len(sandboxes) != 2 || sandboxes[0].Name != "a" {
		t.Errorf("sandboxes %+v %v", sandboxes, err)
	}
	nodes, err := c.NodeList(ctx)
	if err != nil || len(nodes) != 2 || nodes[1].Name != "b" {
		t.Errorf("nodes %+v %v", nodes, err)
	}
}

func TestTimeout(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	c, err := New("unix://" + socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Info(ctx)
	want := "timed out waiting for meshagent at unix://" + socket + ": context deadline exceeded"
	if err == nil || err.Error() != want || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want %q", err, want)
	}
}

func mustUnescape(t *testing.T, s string) string {
	t.Helper()
	u, err := url.QueryUnescape(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
