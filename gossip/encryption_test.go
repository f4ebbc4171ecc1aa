package gossip

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestEncryptedClusterRefusesWrongKey runs on real UDP/TCP sockets on
// 127.0.0.1 (the production transport): members sharing the key form a
// cluster and replicate; a node with another key, or none, cannot join.
func TestEncryptedClusterRefusesWrongKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	start := func(name string, key []byte) *Cluster {
		t.Helper()
		c, err := New(Config{
			NodeName:  name,
			VTEP:      netip.MustParseAddr("192.0.2.1"),
			BindAddr:  "127.0.0.1",
			BindPort:  -1,
			SecretKey: key,
			Timing:    testTiming(),
			Logger:    testLogger(),
		})
		if err != nil {
			t.Fatalf("starting %s: %v", name, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	var nodes []*testNode
	for i := range 3 {
		c := start(fmt.Sprintf("k%d", i), key)
		if i > 0 {
			if _, err := c.Join([]string{nodes[0].Addr()}); err != nil {
				t.Fatalf("joining with the right key: %v", err)
			}
		}
		nodes = append(nodes, &testNode{Cluster: c})
	}
	if err := nodes[2].Put(ep("net", "secret", 1)); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, nodes, 30*time.Second, expectIDs(map[string]bool{"net/secret": true}))

	for name, k := range map[string][]byte{"wrongkey": bytes.Repeat([]byte{8}, 32), "nokey": nil} {
		intruder := start(name, k)
		if _, err := intruder.Join([]string{nodes[0].Addr()}); err == nil {
			t.Errorf("%s joined an encrypted cluster", name)
		}
		if got := len(intruder.Endpoints("net")); got != 0 {
			t.Errorf("%s received %d endpoints", name, got)
		}
	}
	for _, n := range nodes {
		for _, m := range n.Members() {
			if m.Name == "wrongkey" || m.Name == "nokey" {
				t.Errorf("%s lists intruder %s as a member", n.Name(), m.Name)
			}
		}
	}
	if _, err := New(Config{NodeName: "badkey", VTEP: netip.MustParseAddr("192.0.2.1"), SecretKey: []byte("short"), Transport: newMemNetwork().newTransport()}); err == nil {
		t.Error("New accepted a 5-byte key")
	}
}
