package dockerplugin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
)

// calls are the plugin's routes that take a request body.
var calls = []string{
	"NetworkDriver.CreateNetwork", "NetworkDriver.DeleteNetwork", "NetworkDriver.CreateEndpoint",
	"NetworkDriver.DeleteEndpoint", "NetworkDriver.EndpointOperInfo", "NetworkDriver.Join", "NetworkDriver.Leave",
	"NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.RevokeExternalConnectivity",
	"IpamDriver.RequestPool", "IpamDriver.ReleasePool", "IpamDriver.RequestAddress", "IpamDriver.ReleaseAddress",
}

// FuzzRequests sends any body to any call: the answer is always JSON, 200
// or 500 with one line in Err, and nothing panics.
func FuzzRequests(f *testing.F) {
	for i, body := range []string{
		`{"NetworkID":"ab","IPv4Data":[{"AddressSpace":"meshnet","Pool":"10.0.1.0/24","Gateway":"10.0.1.1/24"}]}`,
		`{"NetworkID":"ab","Options":{"com.docker.network.generic":{"mtu":"1400"},"com.docker.network.internal":true}}`,
		`{"NetworkID":"ab","EndpointID":"cd","Interface":{"Address":"10.0.1.5/24","MacAddress":"02:00:00:00:00:01"}}`,
		`{"NetworkID":"ab","EndpointID":"cd","SandboxKey":"/var/run/docker/netns/1234"}`,
		`{"EndpointID":"cd","Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":8080}]}}`,
		`{"AddressSpace":"meshnet","Pool":"10.0.1.0/24","SubPool":"10.0.1.128/25"}`,
		`{"PoolID":"10.0.1.0/24,10.0.1.128/25","Address":"10.0.1.7","Options":{"RequestAddressType":"com.docker.network.gateway"}}`,
	} {
		f.Add(i, body)
	}
	svc := &fuzzService{}
	p, err := New(svc, Options{StateFile: filepath.Join(f.TempDir(), "state.json")})
	if err != nil {
		f.Fatal(err)
	}
	h := p.Handler()
	f.Cleanup(p.Close)
	f.Fuzz(func(t *testing.T, call int, body string) {
		path := calls[uint(call)%uint(len(calls))]
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/"+path, strings.NewReader(body)))
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: answer %q is not JSON", path, w.Body.String())
		}
		if w.Code == http.StatusInternalServerError {
			if msg, _ := out["Err"].(string); msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("%s: error %q is not one line", path, msg)
			}
		} else if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d", path, w.Code)
		}
	})
}

// FuzzPublishSpecs: any portmap dockerd could send becomes -p values that
// meshnet's own parser takes, or one error.
func FuzzPublishSpecs(f *testing.F) {
	f.Add(`[{"Proto":6,"Port":80,"HostIP":"192.0.2.1","HostPort":8000,"HostPortEnd":8010}]`)
	f.Add(`[{"Proto":17,"Port":53,"HostIP":"::1"}]`)
	f.Fuzz(func(t *testing.T, raw string) {
		var v any
		if json.Unmarshal([]byte(raw), &v) != nil {
			return
		}
		specs, err := publishSpecs(v)
		if err != nil {
			return
		}
		for _, s := range specs {
			if strings.ContainsAny(s, " \n") {
				t.Fatalf("spec %q", s)
			}
		}
	})
}

// fuzzService answers every call the plugin makes: what fakeService does,
// and the rest as a service holding nothing would.
type fuzzService struct{ fakeService }

func (f *fuzzService) NetworkCreate(context.Context, api.NetworkCreate) (api.CreateResponse, error) {
	return api.CreateResponse{ID: "m1"}, nil
}
func (f *fuzzService) NetworkRemove(_ context.Context, ref string) error {
	return service.NotFoundf("network %s not found", ref)
}
func (f *fuzzService) NetworkInspect(_ context.Context, ref string) (api.Network, error) {
	return api.Network{}, service.NotFoundf("network %s not found", ref)
}
func (f *fuzzService) EndpointInspect(_ context.Context, id string) (api.Endpoint, error) {
	return api.Endpoint{ID: id, MacAddress: "02:6d:0a:00:01:07"}, nil
}
func (f *fuzzService) EndpointJoin(_ context.Context, id string, _ api.EndpointJoin) (api.Endpoint, error) {
	return api.Endpoint{ID: id, Gateway: "10.0.1.1"}, nil
}
func (f *fuzzService) EndpointUpdate(_ context.Context, id string, _ api.EndpointUpdate) (api.Endpoint, error) {
	return api.Endpoint{ID: id}, nil
}
func (f *fuzzService) SandboxList(context.Context, map[string][]string) ([]api.Sandbox, error) {
	return nil, nil
}
func (f *fuzzService) SandboxCreate(context.Context, api.SandboxCreate) (api.CreateResponse, error) {
	return api.CreateResponse{ID: "s1"}, nil
}
func (f *fuzzService) SandboxInspect(_ context.Context, ref string) (api.Sandbox, error) {
	return api.Sandbox{ID: ref}, nil
}
func (f *fuzzService) SandboxRemove(context.Context, string, bool) error { return nil }
func (f *fuzzService) SandboxPublish(_ context.Context, ref string, _ []string) (api.Sandbox, error) {
	return api.Sandbox{ID: ref}, nil
}

// FuzzState: a state file of any content loads or is refused with one
// line; what loads has only ids of Docker's shape.
func FuzzState(f *testing.F) {
	f.Add(`{"networks":{"ab":{"network":"m1","subnet":"10.0.1.0/24"}},"endpoints":{"cd":{"network":"m1","endpoint":"e1"}},"addresses":{"m1 10.0.1.2":{"endpoint":"e1"}}}`)
	f.Add(`{"networks":{"../x":{}}}`)
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(t.TempDir(), "state.json")
		if err := writeFile(path, content); err != nil {
			t.Fatal(err)
		}
		st, err := loadState(path)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		for id := range st.Networks {
			if checkID("network", id) != nil {
				t.Fatalf("loaded network id %q", id)
			}
		}
	})
}
