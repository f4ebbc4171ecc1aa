package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCommandLine runs any command line against an agent that is not
// there: whatever the input, agentctl must not panic, and a failure is
// told on stderr in "agentctl: …" lines only (one per error; several only
// for rm and inspect of several objects).
func FuzzCommandLine(f *testing.F) {
	for _, seed := range []string{
		"network create -d overlay --subnet 10.0.0.0/24 --gateway 10.0.0.1 multi",
		"network create multi --aux-address a=10.0.0.9 --ip-range 10.0.0.0/25 --subnet 10.0.0.0/24",
		"network ls -q -f name=x --format {{.Name}}",
		"network inspect --format {{json .}} a b",
		"network connect --alias a --link b:c --ip 10.0.0.3 n sb",
		"sandbox create --net a --net b --ip 1.2.3.4 -p 80:80 sb",
		"sandbox exec sb -- true",
		"run --rm sb -- true",
		"help network create",
		"version --format {{.Client.Version}}",
		"info --format json",
		"network rm a b",
	} {
		f.Add(seed)
	}
	host := "unix://" + filepath.Join(f.TempDir(), "agent.sock")
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "-H") || strings.Contains(line, "host") || strings.Contains(line, "generate-bash-completion") {
			return // only the bogus host may be contacted
		}
		args := append([]string{"-H", host}, strings.Split(line, " ")...)
		_, stderr, status := agentctl(t, "", args...)
		if status == 0 {
			return
		}
		lines := strings.SplitAfter(stderr, "\n")
		if stderr == "" || lines[len(lines)-1] != "" {
			t.Fatalf("%q: status %d, stderr %q", line, status, stderr)
		}
		for _, l := range lines[:len(lines)-1] {
			if !strings.HasPrefix(l, "agentctl: ") || len(l) == len("agentctl: \n") {
				t.Fatalf("%q: status %d, stderr %q", line, status, stderr)
			}
		}
	})
}
