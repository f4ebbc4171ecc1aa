package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testStores() []string {
	s := os.Getenv("MESHNET_TEST_STORES")
	if s == "" {
		s = "embedded,etcd,consul,zookeeper"
	}
	return strings.Split(s, ",")
}

// A cluster starts an agent per host on its store, restarts one, takes a
// host that joins later, and leaves nothing behind.
func TestClusterLifecycle(t *testing.T) {
	for _, store := range testStores() {
		t.Run(store, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			c, err := New(ctx, Options{Hosts: 2, Store: store, Tag: "clt"})
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			t.Cleanup(func() {
				if t.Failed() {
					c.DumpLogs(t.Logf)
				}
				if !closed {
					c.Close()
				}
			})
			for _, h := range c.Hosts() {
				info, err := h.Info(ctx)
				if err != nil {
					t.Fatalf("%s: %v", h.Node, err)
				}
				if info.Node != h.Node {
					t.Errorf("%s answers as node %q", h.Node, info.Node)
				}
				if r := h.AgentCtl("info"); r.Code != 0 {
					t.Errorf("agentctl info on %s: %s", h.Node, r)
				}
			}
			kv, err := c.Store()
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(time.Minute)
			for {
				kvs, _, err := kv.List(ctx, "nodes/")
				if err == nil && len(kvs) == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("nodes/ in the store: %v, %v; want n1 and n2", kvs, err)
				}
				time.Sleep(100 * time.Millisecond)
			}

			pid := c.Host(1).PID()
			if err := c.Host(1).Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if c.Host(1).PID() == pid || !c.Host(1).Running() {
				t.Error("restart did not start a new agent")
			}
			h3, err := c.AddHost(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if h3.Node != "n3" || h3.Addr.Addr().String() != "192.0.2.3" {
				t.Errorf("third host is %s at %s", h3.Node, h3.Addr)
			}

			// A namespace left by a test is removed too.
			dir := c.dir
			if err := os.MkdirAll("/etc/netns/"+c.Name("left"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			closed = true
			left, _ := filepath.Glob("/run/netns/" + c.Prefix + "*")
			left2, _ := filepath.Glob("/etc/netns/" + c.Prefix + "*")
			if len(left)+len(left2) > 0 {
				t.Errorf("left behind: %v %v", left, left2)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("cluster directory %s left behind (%v)", dir, err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}
