package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
)

func TestParseConf(t *testing.T) {
	for _, tc := range []struct {
		conf, args string
		want       api.CNIAdd // ContainerID c1, IfName eth0, NetNS /ns
		err        string
	}{
		{conf: `{"cniVersion":"1.1.0","name":"multi","type":"meshnet"}`,
			want: api.CNIAdd{Network: "multi"}},
		{conf: `{"cniVersion":"1.0.0","name":"conf","type":"meshnet","network":"multi","socket":"unix:///run/x.sock",
			"runtimeConfig":{"ips":["10.0.0.5/24","fd00::5"],"mac":"02:00:00:00:00:05","aliases":{"conf":["db"],"multi":["pg"]},
			"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}}`,
			want: api.CNIAdd{Network: "multi", IP: "10.0.0.5", IP6: "fd00::5", MAC: "02:00:00:00:00:05", Aliases: []string{"db", "pg"},
				Ports: []api.CNIPortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}}},
		{conf: `{"name":"multi","type":"meshnet"}`, args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=web;IP=10.0.0.9;MAC=02:00:00:00:00:09",
			want: api.CNIAdd{Network: "multi", Name: "web", IP: "10.0.0.9", MAC: "02:00:00:00:00:09"}},
		{conf: `{"name":"multi","type":"meshnet","args":{"cni":{"ips":["10.0.0.7"]}}}`, want: api.CNIAdd{Network: "multi", IP: "10.0.0.7"}},
		{conf: `{"name":"multi","type":"meshnet"`, err: "not valid JSON: it ends too early"},
		{conf: `{"name":"multi",,}`, err: "not valid JSON: a syntax error at byte 17"},
		{conf: `{"name":"multi","type":"meshnet","socket":5}`, err: `field "socket" is a JSON number`},
		{conf: `{"name":"multi","type":"bridge"}`, err: `type is "bridge", not "meshnet"`},
		{conf: `{"type":"meshnet"}`, err: "has no name"},
		{conf: `{"name":"m","type":"meshnet","socket":"http://x"}`, err: `invalid socket "http://x"`},
		{conf: `{"name":"m","type":"meshnet","runtimeConfig":{"ips":["10.0.0.1","10.0.0.2"]}}`, err: "more than one IPv4 address"},
		{conf: `{"name":"m","type":"meshnet","runtimeConfig":{"ips":["ten"]}}`, err: `invalid IP address "ten"`},
		{conf: `{"name":"m","type":"meshnet"}`, args: "IP=10.0.0.300", err: `invalid IP address "10.0.0.300"`},
		{conf: `{"name":"m","type":"meshnet"}`, args: "MAC=zz", err: `invalid MAC address "zz"`},
		{conf: `{"name":"m","type":"meshnet"}`, args: "FOO=1", err: "invalid CNI_ARGS"},
		{conf: `{"name":"m","type":"meshnet","prevResult":{"cniVersion":"9.9.9"}}`, err: "previous plugin's result cannot be read"},
	} {
		req, err := func() (api.CNIAdd, error) {
			c, err := parseConf([]byte(tc.conf))
			if err != nil {
				return api.CNIAdd{}, err
			}
			return addRequest(c, "c1", "/ns", "eth0", tc.args)
		}()
		if tc.err != "" {
			var ce *confError
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &ce) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s %s: %v, want a configuration error with %q", tc.conf, tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tc.conf, tc.args, err)
			continue
		}
		tc.want.CNIAttachment, tc.want.NetNS = api.CNIAttachment{ContainerID: "c1", IfName: "eth0"}, "/ns"
		if got, want := asJSON(t, req), asJSON(t, tc.want); got != want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.conf, tc.args, got, want)
		}
	}
}

// FuzzParseConf: any net conf and CNI_ARGS give a request or one
// configuration error, never a panic.
func FuzzParseConf(f *testing.F) {
	f.Add(`{"cniVersion":"1.1.0","name":"multi","type":"meshnet","runtimeConfig":{"ips":["10.0.0.5/24"],"portMappings":[{"hostPort":1}]}}`, "IP=10.0.0.1")
	f.Add(`{"name":"m","type":"meshnet","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.0.0.2/24","interface":0}]}}`, "K8S_POD_NAME=x;IgnoreUnknown=true")
	f.Add(`{"name":"m","type":"meshnet","args":{"cni":{"ips":["fd00::1/64","10.1.1.1"]}},"runtimeConfig":{"mac":"02:00:00:00:00:01","aliases":{"m":["a"]}}}`, "")
	f.Fuzz(func(t *testing.T, conf, args string) {
		c, err := parseConf([]byte(conf))
		if err == nil {
			_, err = addRequest(c, "c1", "/ns", "eth0", args)
		}
		var ce *confError
		if err != nil && (!errors.As(err, &ce) || strings.Contains(err.Error(), "\n")) {
			t.Fatalf("%q %q: %v, want one-line configuration error", conf, args, err)
		}
	})
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
