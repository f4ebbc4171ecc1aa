package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// Sandboxes adopted by path (--netns, as other runtimes give them) are
// pinned to the namespace they had: when the namespace goes away, or the
// path comes to lead to another namespace (a process exits and its PID is
// reused; a named namespace is deleted and made anew), the agent never
// plumbs anything into what is there now, does not retry forever, and
// cleans the sandbox up: its endpoint leaves the network on every host
// and its address lease is given back. Another sandbox joins the network
// meanwhile without noticing.
func TestSandboxNamespaceGoneOrReplaced(t *testing.T) {
	c := newCluster(t, cluster.StoreEmbedded, 2)
	ctx := testCtx(t)
	n1, n2 := c.Host(0), c.Host(1)
	ctl(t, n1, "network", "create", "-d", "overlay", "multi")
	waitListed(t, n2, "multi")
	netID := inspectNetwork(t, n1, "multi").ID

	// Two namespaces "of another runtime", adopted as sandboxes.
	replaced, gone := c.Name("xr"), c.Name("xg")
	nsR, err := nshost.NewNS(replaced)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsR.Close() })
	nsG, err := nshost.NewNS(gone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsG.Close() })
	ctl(t, n1, "sandbox", "create", "--netns", nsR.Path(), "--net", "multi", replaced)
	ctl(t, n1, "sandbox", "create", "--netns", nsG.Path(), "--net", "multi", gone)
	err = eventually(ctx, func() error {
		for _, name := range []string{replaced, gone} {
			if !strings.Contains(ctl(t, n2, "network", "inspect", "multi"), name) {
				return fmt.Errorf("n2 does not list %s on multi", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The first path now leads to a new namespace; the second leads nowhere.
	if err := nsR.Close(); err != nil {
		t.Fatal(err)
	}
	if nsR, err = nshost.NewNS(replaced); err != nil {
		t.Fatal(err)
	}
	if err := nsG.Close(); err != nil {
		t.Fatal(err)
	}

	// Programming multi again (a new sandbox joins it) touches neither.
	c3 := c.Name("c3")
	createSandbox(t, n1, "multi", c3)
	if links := linksIn(t, nsR); len(links) != 1 {
		t.Errorf("the new namespace at %s was programmed: it has %v", nsR.Path(), links)
	}

	// Both are cleaned up: gone from sandbox ls here and from the network
	// on the other host, their leases released.
	store, err := c.Store()
	if err != nil {
		t.Fatal(err)
	}
	err = eventually(ctx, func() error {
		for _, name := range []string{replaced, gone} {
			if strings.Contains(ctl(t, n1, "sandbox", "ls"), name) {
				return fmt.Errorf("sandbox ls on n1 still lists %s", name)
			}
			if strings.Contains(ctl(t, n2, "network", "inspect", "multi"), name) {
				return fmt.Errorf("n2 still lists %s on multi", name)
			}
		}
		kvs, _, err := store.List(ctx, "ips/"+netID+"/")
		if err != nil || len(kvs) != 1 {
			return fmt.Errorf("%d address leases in multi (want c3's only): %v", len(kvs), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if links := linksIn(t, nsR); len(links) != 1 {
		t.Errorf("the new namespace at %s was programmed: it has %v", nsR.Path(), links)
	}
	log := readFile(t, n1.LogPath)
	if n := strings.Count(log, "releasing its endpoints"); n != 2 {
		t.Errorf("%d lines saying a sandbox's namespace is gone, want 2 (one each)", n)
	}
	if n := strings.Count(log, "level=ERROR"); n > 0 {
		t.Errorf("%d error lines in n1's log", n)
	}
	nsR.Close()
	ctl(t, n1, "sandbox", "rm", c3)
	ctl(t, n1, "network", "rm", "multi")
}

// linksIn names the links of a namespace.
func linksIn(t *testing.T, ns *nshost.NS) []string {
	t.Helper()
	h, err := ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names
}
