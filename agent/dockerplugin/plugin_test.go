package dockerplugin

// The plugin's wire and checks, over a service that holds one network and
// records what it is asked (the real one is tested end to end with real
// dockerds, e2e/docker).

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
)

type fakeService struct {
	service.Service
	nets  []api.Network
	calls []string
}

func (f *fakeService) NetworkList(context.Context, map[string][]string) ([]api.Network, error) {
	return f.nets, nil
}

func (f *fakeService) NetworkPlan(_ context.Context, req api.NetworkCreate) (api.Network, error) {
	f.calls = append(f.calls, "plan")
	cfg := api.IPAMConfig{Subnet: "10.0.9.0/24", Gateway: "10.0.9.1"}
	if req.IPAM != nil && len(req.IPAM.Config) > 0 && req.IPAM.Config[0].Subnet != "" {
		cfg = req.IPAM.Config[0]
		if cfg.Gateway == "" {
			cfg.Gateway = strings.TrimSuffix(cfg.Subnet, "0/24") + "1"
		}
	}
	return api.Network{Name: req.Name, IPAM: api.IPAM{Config: []api.IPAMConfig{cfg}}}, nil
}

func (f *fakeService) EndpointCreate(_ context.Context, req api.EndpointCreate) (api.Endpoint, error) {
	f.calls = append(f.calls, "endpoint "+req.IP)
	return api.Endpoint{ID: "e1", IPv4Address: "10.0.1.7/24", MacAddress: "02:6d:0a:00:01:07"}, nil
}

// call posts body to the plugin's handler and returns the status and the
// decoded answer.
func call(t *testing.T, h http.Handler, path, body string) (int, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/"+path, strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s: answer %q is not JSON: %v", path, w.Body.String(), err)
	}
	return w.Code, out
}

func newPlugin(t *testing.T, svc service.Service) *Plugin {
	t.Helper()
	p, err := New(svc, Options{StateFile: filepath.Join(t.TempDir(), "state.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestActivateAndCapabilities(t *testing.T) {
	h := newPlugin(t, &fakeService{}).Handler()
	_, m := call(t, h, "Plugin.Activate", "")
	if got, _ := json.Marshal(m["Implements"]); string(got) != `["NetworkDriver","IpamDriver"]` {
		t.Errorf("Implements = %s", got)
	}
	_, m = call(t, h, "NetworkDriver.GetCapabilities", "{}")
	if m["Scope"] != "local" || m["ConnectivityScope"] != "global" {
		t.Errorf("capabilities = %v", m)
	}
}

// Malformed and hostile requests get one sentence, status 500, and change
// nothing.
func TestBadRequests(t *testing.T) {
	svc := &fakeService{}
	h := newPlugin(t, svc).Handler()
	big := `{"NetworkID":"` + strings.Repeat("a", 2<<20) + `"}`
	for _, c := range []struct{ path, body, want string }{
		{"NetworkDriver.CreateNetwork", `{"NetworkID":`, "not valid JSON"},
		{"NetworkDriver.CreateNetwork", big, "not valid JSON"},
		{"NetworkDriver.CreateNetwork", `{"NetworkID":"../x"}`, "invalid network id"},
		{"NetworkDriver.CreateNetwork", `{"NetworkID":"ab","IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"172.18.0.0/16","Gateway":"172.18.0.1/16"}]}`, "--ipam-driver meshnet"},
		{"NetworkDriver.CreateNetwork", `{"NetworkID":"ab","Options":{"com.docker.network.generic":{"mtu":1400}},"IPv4Data":[{"AddressSpace":"meshnet","Pool":"10.0.1.0/24","Gateway":"10.0.1.1/24"}]}`, "a string is needed"},
		{"NetworkDriver.CreateNetwork", `{"NetworkID":"ab","IPv4Data":[{"AddressSpace":"meshnet","Pool":"10.0.1.0/24","Gateway":"10.9.1.1/24"}]}`, "invalid gateway"},
		{"NetworkDriver.Join", `{"NetworkID":"ab","EndpointID":"cd","SandboxKey":"relative/key"}`, "invalid sandbox key"},
		{"NetworkDriver.Join", `{"NetworkID":"ab","EndpointID":"cd","SandboxKey":"/var/run/docker/netns/../../etc"}`, "invalid sandbox key"},
		{"NetworkDriver.CreateEndpoint", `{"NetworkID":"ab","EndpointID":"cd","Interface":{"Address":"10.0.1.5/24"}}`, "not a meshnet network"},
		{"IpamDriver.RequestPool", `{"AddressSpace":"meshnet","Pool":"10.0.1.0/33"}`, "invalid subnet"},
		{"IpamDriver.RequestPool", `{"AddressSpace":"meshnet","Pool":"10.0.1.0/24","Options":{"a":"b"}}`, "--ipam-opt"},
		{"IpamDriver.RequestPool", `{"AddressSpace":"meshnet","V6":true}`, "IPv4 only"},
		{"IpamDriver.RequestPool", `{"AddressSpace":"other"}`, "address space"},
		{"IpamDriver.RequestAddress", `{"PoolID":"10.0.1.0/24","Address":"10.0.2.9"}`, "outside"},
		{"IpamDriver.RequestAddress", `{"PoolID":"bogus"}`, "invalid pool id"},
		{"IpamDriver.RequestAddress", `{"PoolID":"10.0.1.0/24,10.0.2.0/25"}`, "invalid pool id"},
		{"IpamDriver.RequestAddress", `{"PoolID":"10.0.1.0/24"}`, "no meshnet network has the subnet"},
	} {
		code, m := call(t, h, c.path, c.body)
		msg, _ := m["Err"].(string)
		if code != http.StatusInternalServerError || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s %.80s: %d %q, want an error saying %q", c.path, c.body, code, msg, c.want)
		}
	}
	for _, c := range svc.calls {
		if strings.HasPrefix(c, "endpoint") {
			t.Errorf("a bad request leased an address: %v", svc.calls)
		}
	}
}

// A pool is a subnet: one given is checked, none planned; the gateway of a
// network to be is the planned one, and no lease is taken for it.
func TestPools(t *testing.T) {
	svc := &fakeService{}
	h := newPlugin(t, svc).Handler()
	_, m := call(t, h, "IpamDriver.RequestPool", `{"AddressSpace":"meshnet"}`)
	if m["PoolID"] != "10.0.9.0/24" || m["Pool"] != "10.0.9.0/24" {
		t.Errorf("automatic pool = %v", m)
	}
	_, m = call(t, h, "IpamDriver.RequestPool", `{"AddressSpace":"meshnet","Pool":"10.0.5.0/24","SubPool":"10.0.5.128/25"}`)
	if m["PoolID"] != "10.0.5.0/24,10.0.5.128/25" || m["Pool"] != "10.0.5.0/24" {
		t.Errorf("pool with a range = %v", m)
	}
	_, m = call(t, h, "IpamDriver.RequestAddress", `{"PoolID":"10.0.5.0/24,10.0.5.128/25","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	if m["Address"] != "10.0.5.1/24" {
		t.Errorf("gateway = %v", m)
	}
	for _, c := range svc.calls {
		if strings.HasPrefix(c, "endpoint") {
			t.Errorf("the gateway took a lease: %v", svc.calls)
		}
	}
	// An existing network's pool is its subnet, and its addresses are
	// endpoints' leases.
	svc.nets = []api.Network{{Name: "multi", ID: "m1", Scope: api.ScopeGlobal,
		IPAM: api.IPAM{Config: []api.IPAMConfig{{Subnet: "10.0.1.0/24", Gateway: "10.0.1.1"}}}}}
	_, m = call(t, h, "IpamDriver.RequestAddress", `{"PoolID":"10.0.1.0/24","Address":"10.0.1.7"}`)
	if m["Address"] != "10.0.1.7/24" || svc.calls[len(svc.calls)-1] != "endpoint 10.0.1.7" {
		t.Errorf("address = %v, calls %v", m, svc.calls)
	}
	code, m := call(t, h, "IpamDriver.RequestAddress", `{"PoolID":"10.0.1.0/24","Address":"10.0.1.9","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	if code != http.StatusInternalServerError || !strings.Contains(m["Err"].(string), "gateway of network multi is 10.0.1.1") {
		t.Errorf("another gateway than the network's: %d %v", code, m)
	}
}

// The state file survives a restart, and a damaged one is refused with
// what to do.
func TestState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	st, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Networks["ab"] = networkBinding{Network: "m1", Subnet: "10.0.1.0/24"}
	st.Endpoints["cd"] = endpointBinding{Network: "m1", Endpoint: "e1"}
	if err := st.save(); err != nil {
		t.Fatal(err)
	}
	again, err := loadState(path)
	if err != nil || again.Networks["ab"].Network != "m1" || again.Endpoints["cd"].Endpoint != "e1" {
		t.Fatalf("state after a restart: %+v, %v", again, err)
	}
	if err := writeFile(path, "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := loadState(path); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("damaged state: %v", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// fakeDocker is a dockerd that has the endpoints listed in eps, on
// network "ab".
type fakeDocker struct {
	Docker
	eps []string
}

func (f *fakeDocker) Endpoints(_ context.Context, id string) ([]string, error) {
	if id != "ab" {
		return nil, ErrNoSuchNetwork
	}
	return f.eps, nil
}

func (f *fakeService) EndpointLeave(_ context.Context, id string) error {
	f.calls = append(f.calls, "leave "+id)
	return nil
}

func (f *fakeService) EndpointDelete(_ context.Context, id string) error {
	f.calls = append(f.calls, "delete "+id)
	return nil
}

// The sweep releases what dockerd forgot — an endpoint it no longer has,
// an address no endpoint took — once older than the grace, and nothing
// else.
func TestSweep(t *testing.T) {
	svc := &fakeService{}
	p, err := New(svc, Options{StateFile: filepath.Join(t.TempDir(), "state.json"), Docker: &fakeDocker{eps: []string{"e-live"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	long := time.Now().Add(-2 * sweepGrace)
	p.state.Networks["ab"] = networkBinding{Network: "m1", Subnet: "10.0.1.0/24"}
	p.state.Endpoints["e-live"] = endpointBinding{Network: "m1", Endpoint: "m-live", Since: long}
	p.state.Endpoints["e-gone"] = endpointBinding{Network: "m1", Endpoint: "m-gone", Since: long}
	p.state.Endpoints["e-new"] = endpointBinding{Network: "m1", Endpoint: "m-new", Since: time.Now()}
	p.state.Addresses["m1 10.0.1.2"] = addressLease{Endpoint: "m-live", Since: long}
	p.state.Addresses["m1 10.0.1.3"] = addressLease{Endpoint: "m-gone", Since: long}
	p.state.Addresses["m1 10.0.1.4"] = addressLease{Endpoint: "m-new", Since: time.Now()}
	p.state.Addresses["m1 10.0.1.5"] = addressLease{Endpoint: "m-lost", Since: long}
	p.state.Addresses["m1 10.0.1.6"] = addressLease{Endpoint: "m-young", Since: time.Now()}
	if err := p.sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"leave m-gone", "delete m-gone", "leave m-lost", "delete m-lost"}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(svc.calls))
	if !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	if _, ok := p.state.Endpoints["e-gone"]; ok || len(p.state.Endpoints) != 2 || len(p.state.Addresses) != 3 {
		t.Errorf("state after the sweep: %v %v", p.state.Endpoints, p.state.Addresses)
	}
}

// A docker-host where nothing listens is told apart from a failing
// dockerd: the mirror says so once, quietly.
func TestNoDockerd(t *testing.T) {
	d, err := NewDocker("unix://" + filepath.Join(t.TempDir(), "docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.Networks(ctx); !errors.Is(err, ErrNoDockerd) {
		t.Errorf("no dockerd: %v, want ErrNoDockerd", err)
	}
}
