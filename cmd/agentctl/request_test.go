package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
)

func TestIPAMConfigs(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		subnets, ranges, gateways, aux []string
		want                           []api.IPAMConfig
		wantErr                        string
	}{
		{name: "none", want: []api.IPAMConfig{}},
		{
			name:     "gateway and range find their subnet whatever the order",
			subnets:  []string{"10.1.0.0/16", "10.2.0.0/16", "fd00::/64"},
			ranges:   []string{"10.2.1.0/24", "10.1.128.0/17"},
			gateways: []string{"fd00::1", "10.2.0.1", "10.1.0.254"},
			aux:      []string{"router=10.1.0.2", "dns=10.1.0.3"},
			want: []api.IPAMConfig{
				{Subnet: "10.1.0.0/16", IPRange: "10.1.128.0/17", Gateway: "10.1.0.254", AuxAddress: map[string]string{"router": "10.1.0.2", "dns": "10.1.0.3"}},
				{Subnet: "10.2.0.0/16", IPRange: "10.2.1.0/24", Gateway: "10.2.0.1"},
				{Subnet: "fd00::/64", Gateway: "fd00::1"},
			},
		},
		{name: "gateway outside", subnets: []string{"10.0.0.0/24"}, gateways: []string{"10.9.0.1"}, wantErr: "no matching subnet for gateway 10.9.0.1"},
		{name: "gateway without subnet", gateways: []string{"10.9.0.1"}, wantErr: "no matching subnet for gateway 10.9.0.1"},
		{name: "v4 gateway, v6 subnet", subnets: []string{"fd00::/64"}, gateways: []string{"10.0.0.1"}, wantErr: "no matching subnet for gateway 10.0.0.1"},
		{name: "range outside", subnets: []string{"10.0.0.0/24"}, ranges: []string{"10.0.1.0/25"}, wantErr: "no matching subnet for range 10.0.1.0/25"},
		{name: "range larger than subnet", subnets: []string{"10.0.0.0/24"}, ranges: []string{"10.0.0.0/16"}, wantErr: "no matching subnet for range 10.0.0.0/16"},
		{name: "aux outside", subnets: []string{"10.0.0.0/24"}, aux: []string{"a=10.0.1.1"}, wantErr: "no matching subnet for aux-address 10.0.1.1"},
		{name: "two gateways", subnets: []string{"10.0.0.0/24"}, gateways: []string{"10.0.0.1", "10.0.0.2"},
			wantErr: "cannot configure multiple gateways (10.0.0.1, 10.0.0.2) for the same subnet (10.0.0.0/24)"},
		{name: "two ranges", subnets: []string{"10.0.0.0/24"}, ranges: []string{"10.0.0.0/25", "10.0.0.128/25"},
			wantErr: "cannot configure multiple ranges (10.0.0.0/25, 10.0.0.128/25) on the same subnet (10.0.0.0/24)"},
		{name: "overlap", subnets: []string{"10.0.0.0/8", "10.1.0.0/16"}, wantErr: "subnets 10.0.0.0/8 and 10.1.0.0/16 overlap"},
		{name: "bad subnet", subnets: []string{"10.0.0.0"}, wantErr: `invalid subnet "10.0.0.0": expected CIDR form, like 10.1.0.0/24`},
		{name: "bad range", subnets: []string{"10.0.0.0/24"}, ranges: []string{"x"}, wantErr: `invalid ip-range "x": expected CIDR form, like 10.1.0.128/25`},
		{name: "bad gateway", subnets: []string{"10.0.0.0/24"}, gateways: []string{"10.0.0.0/24"}, wantErr: `invalid gateway "10.0.0.0/24": expected an IP address`},
		{name: "aux without =", subnets: []string{"10.0.0.0/24"}, aux: []string{"10.0.0.5"}, wantErr: `invalid --aux-address "10.0.0.5": expected NAME=IP`},
		{name: "aux without name", subnets: []string{"10.0.0.0/24"}, aux: []string{"=10.0.0.5"}, wantErr: `invalid --aux-address "=10.0.0.5": expected NAME=IP`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ipamConfigs(tc.subnets, tc.ranges, tc.gateways, tc.aux)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestNetworkCreateRequest(t *testing.T) {
	req, err := networkCreateRequest("multi", networkCreateOptions{
		driver:     "overlay",
		subnets:    []string{"10.5.0.0/24"},
		gateways:   []string{"10.5.0.1"},
		ipamDriver: "default",
		ipamOpts:   []string{"a=b"},
		labels:     []string{"env=prod", "flag", "eq=a=b"},
		opts:       []string{"com.example.mtu=1400"},
		scope:      "global",
		attachable: true,
		configFrom: "base",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := api.NetworkCreate{
		Name:       "multi",
		Driver:     "overlay",
		Scope:      "global",
		Attachable: true,
		IPAM: &api.IPAM{
			Driver:  "default",
			Options: map[string]string{"a": "b"},
			Config:  []api.IPAMConfig{{Subnet: "10.5.0.0/24", Gateway: "10.5.0.1"}},
		},
		ConfigFrom: &api.ConfigReference{Network: "base"},
		Options:    map[string]string{"com.example.mtu": "1400"},
		Labels:     map[string]string{"env": "prod", "flag": "", "eq": "a=b"},
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("got %+v\nwant %+v", req, want)
	}

	req, err = networkCreateRequest("plain", networkCreateOptions{driver: "bridge"})
	if err != nil || req.IPAM != nil || req.Options != nil || req.Labels != nil || req.ConfigFrom != nil {
		t.Errorf("plain: %+v %v", req, err)
	}

	for _, tc := range []struct {
		o    networkCreateOptions
		want string
	}{
		{networkCreateOptions{opts: []string{"novalue"}}, `invalid --opt "novalue": expected KEY=VALUE`},
		{networkCreateOptions{opts: []string{"=v"}}, `invalid --opt "=v": expected KEY=VALUE`},
		{networkCreateOptions{ipamOpts: []string{"x"}}, `invalid --ipam-opt "x": expected KEY=VALUE`},
		{networkCreateOptions{labels: []string{"=x"}}, `invalid --label "=x": expected KEY=VALUE`},
	} {
		if _, err := networkCreateRequest("n", tc.o); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestSandboxCreateRequest(t *testing.T) {
	req, err := sandboxCreateRequest("sb", sandboxOptions{
		networks: []string{"multi", "other"},
		hostname: "web",
		ip:       "10.5.0.9",
		aliases:  []string{"www"},
		links:    []string{"db", "cache:c"},
		dns:      []string{"10.0.0.53"},
		publish:  []string{"8080:80/tcp"},
		expose:   []string{"443"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := api.SandboxCreate{
		Name:     "sb",
		Hostname: "web",
		Networks: []api.NetworkAttachment{
			{Network: "multi", IP: "10.5.0.9", Aliases: []string{"www"}, Links: []string{"db:db", "cache:c"}},
			{Network: "other"},
		},
		DNS:     []string{"10.0.0.53"},
		Publish: []string{"8080:80/tcp"},
		Expose:  []string{"443"},
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("got %+v\nwant %+v", req, want)
	}

	req, err = sandboxCreateRequest("sb", sandboxOptions{})
	if err != nil || req.Networks != nil {
		t.Errorf("no flags: %+v %v", req, err)
	}
	req, err = sandboxCreateRequest("sb", sandboxOptions{ip6: "fd00::5"})
	if err != nil || !reflect.DeepEqual(req.Networks, []api.NetworkAttachment{{Network: "bridge", IP6: "fd00::5"}}) {
		t.Errorf("--ip6 alone: %+v %v", req.Networks, err)
	}

	for _, tc := range []struct {
		o    sandboxOptions
		want string
	}{
		{sandboxOptions{ip: "fd00::5"}, `invalid IPv4 address "fd00::5"`},
		{sandboxOptions{ip6: "10.0.0.1"}, `invalid IPv6 address "10.0.0.1"`},
		{sandboxOptions{links: []string{"a:"}}, `invalid --link "a:": expected SANDBOX:ALIAS`},
		{sandboxOptions{networks: []string{""}}, `invalid --net "": expected a network name or ID`},
	} {
		if _, err := sandboxCreateRequest("sb", tc.o); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestParseFilters(t *testing.T) {
	f, err := parseFilters([]string{"name=a", "name=b", "label=x=y", "driver="})
	want := map[string][]string{"name": {"a", "b"}, "label": {"x=y"}, "driver": {""}}
	if err != nil || !reflect.DeepEqual(f, want) {
		t.Errorf("got %v %v", f, err)
	}
	if _, err := parseFilters([]string{"name"}); err == nil || err.Error() != `bad format of filter "name": expected KEY=VALUE` {
		t.Errorf("error %v", err)
	}
}

func TestInterspersed(t *testing.T) {
	app := newApp(strings.NewReader(""), nil, nil)
	for _, tc := range []struct{ in, want string }{
		{"agentctl network create multi -d overlay --subnet 10.0.0.0/24", "agentctl network create -d overlay --subnet 10.0.0.0/24 -- multi"},
		{"agentctl -H unix:///x network rm a -f b", "agentctl -H unix:///x network rm -f -- a b"},
		{"agentctl network create --ipv6 n --label=a=b", "agentctl network create --ipv6 --label=a=b -- n"},
		{"agentctl network create n -- -weird", "agentctl network create -- n -weird"},
		{"agentctl network create n --subnet", "agentctl network create --subnet"},
		{"agentctl run --rm sb -- ping -c 1 x", "agentctl run --rm sb -- ping -c 1 x"},
		{"agentctl sandbox exec sb ls -l", "agentctl sandbox exec sb ls -l"},
		{"agentctl network", "agentctl network"},
		{"agentctl network ls", "agentctl network ls"},
		{"agentctl network bogus -x", "agentctl network bogus -x"},
	} {
		got := strings.Join(interspersed(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"agentctl help", "agentctl --help"},
		{"agentctl -H unix:///x help network create", "agentctl -H unix:///x network create --help"},
		{"agentctl network help ls", "agentctl network ls --help"},
		{"agentctl network rm help", "agentctl network rm help"},
	} {
		got := strings.Join(helpTopic(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}
