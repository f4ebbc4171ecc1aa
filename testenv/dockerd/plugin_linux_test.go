package dockerd

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeDriver is a remote network driver of Docker's plugin API that
// records the calls it gets: enough to create and delete a network.
type fakeDriver struct {
	mu    sync.Mutex
	calls []string // "NetworkDriver.CreateNetwork 0123…"
}

func (f *fakeDriver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct{ NetworkID string }
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &req)
	call := strings.TrimPrefix(r.URL.Path, "/")
	f.mu.Lock()
	f.calls = append(f.calls, strings.TrimSpace(call+" "+req.NetworkID))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
	switch call {
	case "Plugin.Activate":
		_, _ = io.WriteString(w, `{"Implements":["NetworkDriver"]}`)
	case "NetworkDriver.GetCapabilities":
		_, _ = io.WriteString(w, `{"Scope":"local","ConnectivityScope":"global"}`)
	default:
		_, _ = io.WriteString(w, `{}`)
	}
}

func (f *fakeDriver) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// A network plugin whose socket the test serves in a daemon's PluginDir
// is found by both engines as /run/docker/plugins/NAME.sock inside the
// daemon's mount namespace, activated on `docker network create -d NAME`
// and told to create and delete the network.
func TestPluginSocket(t *testing.T) {
	ctx := testCtx(t)
	legacy, err := Legacy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	modern, err := Modern(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, hosts := underlay(t, "dkp", "h1", "h2")
	for i, engine := range []Engine{legacy, modern} {
		t.Run(engine.Name, func(t *testing.T) {
			d := start(t, ctx, engine, hosts[i], "172.31.1.1/24")
			ln, err := net.Listen("unix", filepath.Join(d.PluginDir, "fakenet.sock"))
			if err != nil {
				t.Fatal(err)
			}
			drv := &fakeDriver{}
			srv := &http.Server{Handler: drv}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })

			id := strings.TrimSpace(docker(t, ctx, d, "network", "create", "-d", "fakenet", "--subnet", "172.30.9.0/24", "fake"))
			if out := docker(t, ctx, d, "network", "ls", "--filter", "driver=fakenet", "--format", "{{.Name}}"); out != "fake\n" {
				t.Errorf("docker network ls -f driver=fakenet: %q", out)
			}
			docker(t, ctx, d, "network", "rm", "fake")
			calls := strings.Join(drv.Calls(), "\n")
			t.Logf("calls of %s to the plugin:\n%s", engine.Name, calls)
			for _, want := range []string{"Plugin.Activate", "NetworkDriver.GetCapabilities",
				"NetworkDriver.CreateNetwork " + id, "NetworkDriver.DeleteNetwork " + id} {
				if !strings.Contains(calls+"\n", want+"\n") {
					t.Errorf("%s did not call %s", engine.Name, want)
				}
			}
		})
	}
}
