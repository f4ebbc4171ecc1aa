package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/testenv/cluster"
)

// A script that starts the agent and at once creates a network works: a
// global operation right after start waits for the store's first answer
// (up to the store timeout) instead of failing with "not connected yet",
// and meanwhile info says "connecting", never "unreachable".
func TestCreateRightAfterStart(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCluster(t, store, 1)
		ctx := testCtx(t)
		n1 := c.Host(0)
		for i, name := range []string{"first", "second"} {
			if err := n1.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := n1.Start(ctx); err != nil { // returns as soon as GET /info answers
				t.Fatal(err)
			}
			if i == 0 {
				info, err := n1.Info(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if info.StoreStatus != "ok" && info.StoreStatus != "connecting" {
					t.Errorf("info right after start: store status %q, want connecting or ok", info.StoreStatus)
				}
			}
			r := n1.AgentCtl("network", "create", "-d", "overlay", name)
			if r.Code != 0 {
				t.Errorf("network create right after start (%s): %s", name, strings.TrimSpace(r.Stderr))
			}
		}
	})
}

// An agent started in a private mount namespace (as under ip netns exec)
// says so in one warning naming the fix; one in the host's does not.
func TestPrivateMountNamespaceWarning(t *testing.T) {
	const warning = "private mount namespace"
	private := cluster.NewT(t, cluster.Options{Hosts: 1, Tag: "e2e",
		AgentWrapper: []string{"unshare", "--mount", "--propagation", "slave"}})
	if log := readFile(t, private.Host(0).LogPath); strings.Count(log, warning) != 1 {
		t.Errorf("agent in a private mount namespace: %d warnings in its log, want 1:\n%s", strings.Count(log, warning), log)
	}
	if err := private.Close(); err != nil {
		t.Fatal(err)
	}
	plain := newCluster(t, cluster.StoreEmbedded, 1)
	if log := readFile(t, plain.Host(0).LogPath); strings.Contains(log, warning) {
		t.Errorf("agent in the host's mount namespace warns:\n%s", log)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFileT(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
