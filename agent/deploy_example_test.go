package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// deployExample is the example configuration shipped for
// /etc/meshnet/agent.yaml.
const deployExample = "../deploy/agent.yaml"

// exampleKeyLine matches a top-level key of the example, active
// ("key: value") or commented out ("# key: value"). The setups shown in
// the header are indented further and do not match.
var exampleKeyLine = regexp.MustCompile(`^(# )?([a-z][a-z0-9-]*):(\s|$)`)

// flagNames are meshagent's configuration keys: every flag but config.
func flagNames() map[string]bool {
	names := map[string]bool{}
	for _, f := range Flags() {
		if n := f.Names()[0]; n != "config" {
			names[n] = true
		}
	}
	return names
}

// TestDeployExampleAccepted: the example, installed as it is, is accepted
// by meshagent's own loader and changes nothing from the defaults.
func TestDeployExampleAccepted(t *testing.T) {
	got, err := load(t, "--config", deployExample)
	if err != nil {
		t.Fatalf("%s is refused: %v", deployExample, err)
	}
	want, err := load(t, "--config", writeFile(t, "{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got.ConfigFile = want.ConfigFile // which file was read
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s as shipped differs from the defaults:\n got %+v\nwant %+v", deployExample, got, want)
	}
}

// TestDeployExampleDocumentsEveryKey: every configuration key appears in
// the example exactly once, and the example names no key that does not
// exist, so it cannot fall behind the flags.
func TestDeployExampleDocumentsEveryKey(t *testing.T) {
	body, err := os.ReadFile(deployExample)
	if err != nil {
		t.Fatal(err)
	}
	names := flagNames()
	seen := map[string]int{}
	for _, line := range strings.Split(string(body), "\n") {
		m := exampleKeyLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if !names[m[2]] {
			if m[1] == "" {
				t.Errorf("%s sets %q, which is not a configuration key", deployExample, m[2])
			}
			continue
		}
		seen[m[2]]++
	}
	for n := range names {
		switch seen[n] {
		case 1:
		case 0:
			t.Errorf("%s does not document key %q (add a commented-out %q line)", deployExample, n, n+": …")
		default:
			t.Errorf("%s has %d top-level %q lines, want one", deployExample, seen[n], n)
		}
	}
}

// TestDeployExampleUncommented: uncommenting every key of the example
// gives a configuration the loader accepts, and the values shown as
// defaults are the defaults. Keys that go with settings the example does
// not make stay commented: the join token (another host's store, not the
// example's embedded one) and the API's TLS (a tcp:// host).
func TestDeployExampleUncommented(t *testing.T) {
	apart := map[string]bool{"cluster-token": true, "cluster-token-file": true,
		"tlsverify": true, "tlscacert": true, "tlscert": true, "tlskey": true}
	body, err := os.ReadFile(deployExample)
	if err != nil {
		t.Fatal(err)
	}
	names := flagNames()
	lines := strings.Split(string(body), "\n")
	for i, line := range lines {
		if m := exampleKeyLine.FindStringSubmatch(line); m != nil && m[1] != "" && names[m[2]] && !apart[m[2]] {
			lines[i] = strings.TrimPrefix(line, "# ")
		}
	}
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := load(t, "--config", path)
	if err != nil {
		t.Fatalf("%s with every key uncommented is refused: %v", deployExample, err)
	}
	want, err := load(t, "--config", writeFile(t, "{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Keys whose default is computed on the host show an example value.
	if got.NodeName != "host1" || got.AdvertiseIface != "eth0" || !got.BIP.IsValid() || len(got.DNS) == 0 ||
		len(got.DNSOpts) == 0 || len(got.DNSSearch) == 0 {
		t.Errorf("example values not applied: %+v", got)
	}
	got.NodeName, got.AdvertiseIface, got.BIP = want.NodeName, want.AdvertiseIface, want.BIP
	got.DNS, got.DNSOpts, got.DNSSearch = want.DNS, want.DNSOpts, want.DNSSearch
	got.ConfigFile = want.ConfigFile // which file was read
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a value shown as the default is not the default:\n got %+v\nwant %+v", got, want)
	}
}
