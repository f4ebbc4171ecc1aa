package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/agent/api"
)

const (
	multiJSON = `{"Name":"multi","Id":"0123456789abcdef0123","Scope":"global","Driver":"overlay",` +
		`"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"10.5.0.0/24","Gateway":"10.5.0.1"}]},"VNI":4097}`
	bridgeJSON   = `{"Name":"bridge","Id":"fedcba9876543210","Scope":"local","Driver":"bridge"}`
	networksJSON = `[` + multiJSON + `,` + bridgeJSON + `]`

	sandboxesJSON = `[{"Id":"aaaabbbbccccdddd","Name":"web","NetNS":"/run/netns/web","Networks":{` +
		`"multi":{"IPAddress":"10.5.0.7","GlobalIPv6Address":"fd00::7"},"bridge":{"IPAddress":"172.17.0.2"}}},` +
		`{"Id":"11112222","Name":"db","Networks":{}}]`
	nodesJSON = `[{"Name":"host2","Address":"192.0.2.2","State":"alive","Networks":["multi"]},` +
		`{"Name":"host1","Address":"192.0.2.1","State":"alive","Self":true,"Networks":["multi","bridge"]}]`
	infoJSON    = `{"Node":"host1","Version":"1.2.3","ClusterStore":"etcd://192.0.2.1:2379","ClusterAdvertise":"192.0.2.1:7946","StoreStatus":"ok","DataDir":"/var/lib/meshnet","Networks":2,"Sandboxes":1,"Nodes":2}`
	versionJSON = `{"Version":"1.2.3","ApiVersion":"1.0","GoVersion":"go1.26.8","Os":"linux","Arch":"amd64","GitCommit":"abc"}`
)

func TestOutput(t *testing.T) {
	srv := newCanned(t, map[string]answer{
		"GET /networks":        {200, networksJSON},
		"GET /networks/multi":  {200, multiJSON},
		"GET /networks/bridge": {200, bridgeJSON},
		"GET /sandboxes":       {200, sandboxesJSON},
		"GET /nodes":           {200, nodesJSON},
		"GET /info":            {200, infoJSON},
		"GET /version":         {200, versionJSON},
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "ls"}, "" +
			"NETWORK ID     NAME     DRIVER    SCOPE\n" +
			"fedcba987654   bridge   bridge    local\n" +
			"0123456789ab   multi    overlay   global\n"},
		{[]string{"network", "ls", "--format", "table"}, "" +
			"NETWORK ID     NAME     DRIVER    SCOPE\n" +
			"fedcba987654   bridge   bridge    local\n" +
			"0123456789ab   multi    overlay   global\n"},
		{[]string{"network", "ls", "-q"}, "fedcba987654\n0123456789ab\n"},
		{[]string{"network", "ls", "-q", "--no-trunc"}, "fedcba9876543210\n0123456789abcdef0123\n"},
		{[]string{"network", "ls", "--format", "{{.Name}} {{.Driver}} {{.VNI}}"}, "bridge bridge 0\nmulti overlay 4097\n"},
		{[]string{"network", "ls", "--format", "{{.Id}}"}, "fedcba9876543210\n0123456789abcdef0123\n"},
		{[]string{"network", "ls", "--format", "{{json .IPAM.Config}}"}, "null\n" + `[{"Subnet":"10.5.0.0/24","Gateway":"10.5.0.1"}]` + "\n"},
		{[]string{"network", "inspect", "--format", "{{.Name}}/{{upper .Scope}}/{{len .IPAM.Config}}", "multi"}, "multi/GLOBAL/1\n"},
		{[]string{"network", "inspect", "--format", "table", "multi"}, "" +
			"NETWORK ID     NAME    DRIVER    SCOPE\n" +
			"0123456789ab   multi   overlay   global\n"},
		{[]string{"sandbox", "ls"}, "" +
			"SANDBOX ID     NAME   NETWORKS       IP ADDRESSES\n" +
			"11112222       db                    \n" +
			"aaaabbbbcccc   web    bridge,multi   172.17.0.2,10.5.0.7,fd00::7\n"},
		{[]string{"sandbox", "ls", "-q"}, "11112222\naaaabbbbcccc\n"},
		{[]string{"sandbox", "ls", "--format", "{{.Name}} {{.NetNS}}"}, "db \nweb /run/netns/web\n"},
		{[]string{"node", "ls"}, "" +
			"NAME    ADDRESS     STATE   NETWORKS\n" +
			"host1   192.0.2.1   alive   multi,bridge\n" +
			"host2   192.0.2.2   alive   multi\n"},
		{[]string{"node", "ls", "--format", "{{.Name}} {{.Self}} {{join .Networks \"+\"}}"}, "host1 true multi+bridge\nhost2 false multi\n"},
		{[]string{"info"}, "" +
			"Node:              host1\n" +
			"Version:           1.2.3\n" +
			"Cluster Store:     etcd://192.0.2.1:2379\n" +
			"Cluster Advertise: 192.0.2.1:7946\n" +
			"Store Status:      ok\n" +
			"Data Dir:          /var/lib/meshnet\n" +
			"Networks:          2\n" +
			"Sandboxes:         1\n" +
			"Nodes:             2\n"},
		{[]string{"info", "--format", "{{.StoreStatus}} {{.Nodes}}"}, "ok 2\n"},
		{[]string{"info", "--format", "json"}, infoJSON + "\n"},
		{[]string{"version", "--format", "{{.Server.Version}} {{.Client.Version}}"}, "1.2.3 dev\n"},
	} {
		stdout, stderr, status := agentctl(t, "", append([]string{"-H", srv.host}, tc.args...)...)
		if status != 0 || stderr != "" || stdout != tc.want {
			t.Errorf("%v: status %d, stderr %q\n got:\n%s\nwant:\n%s", tc.args, status, stderr, stdout, tc.want)
		}
	}

	// JSON lines for ls, one object per network, in the API's field names.
	stdout, _, _ := agentctl(t, "", "-H", srv.host, "network", "ls", "--format", "json")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], `{"Name":"bridge","Id":"fedcba9876543210",`) {
		t.Errorf("json lines: %q", stdout)
	}

	// inspect: an indented JSON array that reads back as the networks.
	stdout, stderr, status := agentctl(t, "", "-H", srv.host, "network", "inspect", "multi", "bridge")
	var got []api.Network
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || status != 0 || stderr != "" {
		t.Fatalf("inspect: %v, status %d, stderr %q", err, status, stderr)
	}
	if len(got) != 2 || got[0].Name != "multi" || got[0].IPAM.Config[0].Gateway != "10.5.0.1" || got[1].ID != "fedcba9876543210" {
		t.Errorf("inspect: %+v", got)
	}
	if !strings.HasPrefix(stdout, "[\n    {\n        \"Name\": \"multi\",\n") {
		t.Errorf("inspect is not indented like docker's:\n%s", stdout)
	}

	// version: both sides, Docker's layout.
	stdout, _, status = agentctl(t, "", "-H", srv.host, "version")
	if status != 0 || !strings.Contains(stdout, "\nServer:\n Version:     1.2.3\n API version: 1.0\n") ||
		!strings.Contains(stdout, " Git commit:  abc\n") || !strings.HasPrefix(stdout, "Client:\n Version:     dev\n") {
		t.Errorf("version:\n%s", stdout)
	}

	// A template that fails on every item is one error line.
	stdout, stderr, status = agentctl(t, "", "-H", srv.host, "network", "ls", "--format", "{{.Name.Foo}}")
	if status != 1 || stdout != "" || !strings.HasPrefix(stderr, "agentctl: executing --format template: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("bad template: %d %q %q", status, stdout, stderr)
	}
}
