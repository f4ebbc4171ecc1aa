package controller

// A controller on fakes: the kernel datapath, the namespaces and their
// files, and host ports are recorded in memory, so that the operations'
// checks and rollbacks are tested without root. Local networks only (no
// cluster store is ever connected); the kernel side is tested for real
// in package datapath, package sandbox and the end-to-end tests.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/dataplane"
	"github.com/meshnet/meshnet/agent/driver/builtin"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/membership"
	"github.com/meshnet/meshnet/agent/networks"
	"github.com/meshnet/meshnet/agent/ports"
	"github.com/meshnet/meshnet/agent/sandboxes"
	"github.com/meshnet/meshnet/agent/statefile"
	"github.com/meshnet/meshnet/agent/storeconn"
	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/sandbox"
)

// fakeKernel records what the dataplane programs: per network, the
// endpoints it was last given. fail, when set, fails programming.
type fakeKernel struct {
	mu       sync.Mutex
	programs map[string][]string // network id → endpoint ids
	fail     error
}

func (k *fakeKernel) Apply(desired []datapath.Network) error {
	for _, n := range desired {
		k.ApplyNetwork(n)
	}
	return nil
}

func (k *fakeKernel) ApplyNetwork(n datapath.Network) error { return k.UpdateNetwork(n) }

func (k *fakeKernel) UpdateNetwork(n datapath.Network) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail != nil {
		return k.fail
	}
	var ids []string
	for _, le := range n.Local {
		ids = append(ids, le.ID)
	}
	k.programs[n.ID] = ids
	return nil
}

func (k *fakeKernel) RemoveNetwork(id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.programs, id)
	return nil
}

func (k *fakeKernel) endpoints(networkID string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.programs[networkID]
}

// fakeNamespaces keeps namespaces and files in maps; failFiles fails
// WriteFiles.
type fakeNamespaces struct {
	mu        sync.Mutex
	spaces    map[string]sandbox.NSID // path → identity
	files     map[string]sandbox.Files
	next      uint64
	failFiles error
}

func (f *fakeNamespaces) Create(name sandbox.Name) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := "/fake/netns/" + name.String()
	if _, ok := f.spaces[path]; ok {
		return "", fmt.Errorf("sandbox namespace %s %w", name, sandbox.ErrExists)
	}
	f.next++
	f.spaces[path] = sandbox.NSID{Dev: 4, Ino: f.next}
	return path, nil
}

func (f *fakeNamespaces) Attach(name sandbox.Name, target string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := "/fake/netns/" + name.String()
	f.spaces[path] = f.spaces[target]
	return path, nil
}

func (f *fakeNamespaces) Remove(name sandbox.Name) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.spaces, "/fake/netns/"+name.String())
	delete(f.files, name.String())
	return nil
}

func (f *fakeNamespaces) WriteFiles(name sandbox.Name, files sandbox.Files) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failFiles != nil {
		return f.failFiles
	}
	f.files[name.String()] = files
	return nil
}

func (f *fakeNamespaces) RemoveFiles(name sandbox.Name) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.files, name.String())
	return nil
}

func (f *fakeNamespaces) Identify(path string) (sandbox.NSID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.spaces[path]; ok {
		return id, nil
	}
	return sandbox.NSID{}, fmt.Errorf("checking network namespace %s: %w", path, sandbox.ErrNotNetNS)
}

func (f *fakeNamespaces) Interfaces(string) ([]sandbox.Interface, error) { return nil, nil }

func (f *fakeNamespaces) paths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for p := range f.spaces {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// testbed is a controller on fakes, with the host's namespace known.
type testbed struct {
	*Controller
	kernel *fakeKernel
	ns     *fakeNamespaces
	bound  map[uint16]bool // host ports a process holds
}

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	tb := &testbed{kernel: &fakeKernel{programs: map[string][]string{}},
		ns:    &fakeNamespaces{spaces: map[string]sandbox.NSID{hostNetNS: {Dev: 4, Ino: 1}}, files: map[string]sandbox.Files{}, next: 1},
		bound: map[uint16]bool{}}
	drivers := builtin.Registry(builtin.Config{DefaultBridge: "none", VTEP: netip.MustParseAddr("192.0.2.1"), VXLANPort: 4789, UnderlayMTU: 1500})
	state, _, err := statefile.Open(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(state.Close)
	recs := sandboxes.NewTable(nil, nil)
	conn := storeconn.New(storeconn.Config{Store: kvstore.Config{Timeout: 1}, URL: "etcd://203.0.113.1:2379", NodeName: "n1"}, log)
	var dp *dataplane.Dataplane
	nets := networks.NewManager(networks.NewTable(nil), drivers, conn, networks.Config{LocalPools: testPools(t)},
		func(ids ...string) {
			for _, id := range ids {
				dp.MarkDirty(id)
			}
		}, log)
	members := membership.New(membership.Config{NodeName: "n1"}, nil, nil, membership.Hooks{}, log)
	dp = dataplane.New(dataplane.Config{NodeName: "n1", IPTables: true}, nets, recs, members, tb.kernel, nil, nil, log)
	state.SetSources(statefile.Sources{Networks: nets.Table.All, Records: recs, Cache: members.Saved})
	tb.Controller = New(Config{NodeName: "n1", VTEP: netip.MustParseAddr("192.0.2.1"), IPTables: true, VXLANPort: 4789, GossipPort: 7946},
		Deps{Networks: nets, Records: recs, Store: conn, Members: members, Dataplane: dp, State: state, Namespaces: tb.ns,
			PortUsable: func(m ports.Mapping) error {
				if tb.bound[m.HostPort] {
					return errors.New("address already in use")
				}
				return nil
			}}, log)
	return tb
}

func testPools(t *testing.T) []ipam.AddressPool {
	t.Helper()
	_, local, err := ipam.ParseAddressPools([]string{"base=198.51.100.0/24,size=26,scope=local"})
	if err != nil {
		t.Fatal(err)
	}
	return local
}

// network creates a bridge network and returns its id.
func (tb *testbed) network(t *testing.T, name string) string {
	t.Helper()
	resp, err := tb.NetworkCreate(context.Background(), api.NetworkCreate{Name: name, Driver: "bridge"})
	if err != nil {
		t.Fatal(err)
	}
	return resp.ID
}

// nothingLeft fails unless the controller holds no sandbox and no
// endpoint, and the fakes no namespace but the host's.
func (tb *testbed) nothingLeft(t *testing.T, what string) {
	t.Helper()
	if nsb, nep := tb.Records.Counts(); nsb != 0 || nep != 0 {
		t.Errorf("%s: %d sandboxes and %d endpoints left", what, nsb, nep)
	}
	if p := tb.ns.paths(); !slices.Equal(p, []string{hostNetNS}) {
		t.Errorf("%s: namespaces left: %v", what, p)
	}
}
