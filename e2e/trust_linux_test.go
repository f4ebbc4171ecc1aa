package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/trust"
	"github.com/meshnet/meshnet/gossip"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/etcd"
	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// Findings 1 and 3: the embedded store served anyone on the underlay in
// clear (`etcdctl get --prefix` and `put` with no credentials), and gossip
// was in clear unless gossip-key was set. Now, from a machine of the
// underlay outside the cluster: the store refuses a client in clear, a
// TLS client without a certificate and one with another CA's; the join
// service refuses a forged token and a rotated one; a gossip node without
// the cluster's key, or with another key, joins no one. Meanwhile n2, which
// joined with n1's token as a user would (cluster-token-file), works.
func TestStrangerCannotUseTheCluster(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "embedded", 2)
	n1, n2 := c.Host(0), c.Host(1)
	out, err := c.AddOutside()
	if err != nil {
		t.Fatal(err)
	}
	ctl(t, n1, "network", "create", "-d", "overlay", "multi")
	waitListed(t, n2, "multi") // n2 reads the store with its certificate

	// The store, from outside: every way in without a certificate of the
	// cluster's CA fails; with n1's client certificate it answers (so the
	// attempts are well-formed).
	n1tls := filepath.Join(n1.Dir, "data", "tls")
	otherDir := t.TempDir() // another cluster's CA, with a client certificate of it
	other, err := trust.OpenAuthority(trust.Dir(otherDir), "mallory", cluster.OutsideAddr)
	if err != nil {
		t.Fatal(err)
	}
	storeFrom := func(ns *nshost.NS, ca, cert, key string) error {
		cfg := kvstore.Config{Backend: kvstore.BackendEtcd, Endpoints: []string{"192.0.2.1:2379"}, Prefix: kvstore.DefaultPrefix,
			Timeout: 3 * time.Second, Dial: ns.Dial, CAFile: ca, CertFile: cert, KeyFile: key}
		s, err := etcd.New(cfg)
		if err != nil {
			return err
		}
		defer s.Close()
		if _, _, err := s.List(ctx, "networks/"); err != nil {
			return err
		}
		_, err = s.Put(ctx, "networks/forged", []byte("{}"))
		return err
	}
	for name, files := range map[string][3]string{
		"in clear":                 {},
		"TLS without certificate":  {filepath.Join(n1tls, "ca.pem")},
		"another CA's certificate": {filepath.Join(n1tls, "ca.pem"), filepath.Join(otherDir, "cert.pem"), filepath.Join(otherDir, "key.pem")},
	} {
		if err := storeFrom(out.NS, files[0], files[1], files[2]); err == nil {
			t.Errorf("from outside, %s: the embedded store answered and took a write", name)
		} else {
			t.Logf("from outside, %s: %v", name, err)
		}
	}
	if err := storeFrom(out.NS, filepath.Join(n1tls, "ca.pem"), filepath.Join(n1tls, "cert.pem"), filepath.Join(n1tls, "key.pem")); err != nil {
		t.Fatalf("with a member's certificate the store does not answer either: %v", err)
	}
	kv, err := c.Store()
	if err != nil {
		t.Fatal(err)
	}
	kv.Delete(ctx, "networks/forged")

	// Joining: the token from the CLI works once rotated tokens are
	// refused; a forged secret is refused; n2, not serving the store,
	// has no token to give.
	tokenOut := strings.TrimSpace(ctl(t, n1, "cluster", "join-token", "-q"))
	tok, err := trust.ParseToken(tokenOut)
	if err != nil {
		t.Fatalf("agentctl cluster join-token -q printed %q: %v", tokenOut, err)
	}
	if long := ctl(t, n1, "cluster", "join-token"); !strings.Contains(long, "--cluster-store etcd://192.0.2.1:2379 --cluster-token "+tokenOut) {
		t.Errorf("agentctl cluster join-token does not say how to join:\n%s", long)
	}
	refused(t, n2, n2.AgentCtl("cluster", "join-token"), "cluster", "join-token")
	joinFrom := func(tk trust.Token) error {
		return trust.Join(ctx, trust.Dir(t.TempDir()), trust.JoinOptions{Addr: "192.0.2.1:2378", Token: tk, Node: "mallory", Dial: out.Dial})
	}
	forged := tok
	forged.Secret = other.Token().Secret
	if err := joinFrom(forged); err == nil {
		t.Error("a token with a forged secret joined")
	}
	if err := joinFrom(tok); err != nil {
		t.Fatalf("the current token does not join: %v", err)
	}
	rotated := strings.TrimSpace(ctl(t, n1, "cluster", "join-token", "--rotate", "-q"))
	if rotated == tokenOut {
		t.Fatal("join-token --rotate printed the same token")
	}
	if err := joinFrom(tok); err == nil {
		t.Error("the token before rotation still joins")
	}

	// Gossip, from outside: a node in clear and a node with a key of its
	// own both fail to join, and the members stay n1 and n2.
	for name, key := range map[string][]byte{"in clear": nil, "another key": trust.NewGossipKey()} {
		err := out.Do(func() error {
			g, err := gossip.New(gossip.Config{NodeName: "mallory", BindAddr: cluster.OutsideAddr.String(), BindPort: 7946,
				VTEP: cluster.OutsideAddr, SecretKey: key, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			defer g.Close()
			if n, err := g.Join([]string{"192.0.2.1:7946"}); err == nil || n > 0 {
				return errors.New("joined")
			}
			return nil
		})
		if err != nil {
			t.Errorf("gossip from outside, %s: %v", name, err)
		}
	}
	// A crafted push/pull (finding 6: node count -1 panicked memberlist),
	// in clear and framed as encrypted with a length of 4 GB.
	pushPull := []byte{6, 0x83, 0xa5, 'N', 'o', 'd', 'e', 's', 0xff,
		0xac, 'U', 's', 'e', 'r', 'S', 't', 'a', 't', 'e', 'L', 'e', 'n', 0x00, 0xa4, 'J', 'o', 'i', 'n', 0xc2}
	for _, msg := range [][]byte{pushPull, {10, 0xff, 0xff, 0xff, 0xff, 1}} {
		conn, err := out.Dial(ctx, "tcp", "192.0.2.1:7946")
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write(msg)
		conn.Read(make([]byte, 64))
		conn.Close()
	}
	ctl(t, n1, "info") // still there
	if names := nodeNames(t, n1); !slices.Equal(names, []string{"n1", "n2"}) {
		t.Errorf("n1's members after the strangers' tries: %v", names)
	}

	// Rotating the gossip key: the keyring's key is a new one, and the
	// cluster still works: a sandbox made after it on n2 is learnt by n1
	// and reached from n1's.
	before, err := kv.Get(ctx, trust.KeyringKey)
	if err != nil {
		t.Fatal(err)
	}
	ctl(t, n2, "cluster", "rotate-gossip-key")
	after, err := kv.Get(ctx, trust.KeyringKey)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(before.Value, after.Value) || strings.Count(string(after.Value), ",") != 0 {
		t.Errorf("keyring before %s, after %s: want one new key", before.Value, after.Value)
	}
	c1, c2 := c.Name("c1"), c.Name("c2")
	createSandbox(t, n1, "multi", c1)
	ip2 := createSandbox(t, n2, "multi", c2)
	sb, err := nshost.OpenNS(c1)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if _, err := sb.Ping(ctx, ip2, 1, 0, guard); err != nil {
		t.Errorf("after the rotation, c1 on n1 cannot reach c2 on n2: %v", err)
	}
	if names := nodeNames(t, n2); !slices.Equal(names, []string{"n1", "n2"}) {
		t.Errorf("n2's members after the rotation: %v", names)
	}
	for _, h := range []*cluster.Host{n1, n2} {
		err := eventually(ctx, func() error {
			cached, err := os.ReadFile(filepath.Join(h.Dir, "data", "tls", "gossip-keys.json"))
			if err != nil || !bytes.Equal(cached, after.Value) {
				return fmt.Errorf("%s's cached keyring is %s (%v), want the store's", h.Node, cached, err)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
}

// nodeNames lists the alive members h's agent sees.
func nodeNames(t *testing.T, h *cluster.Host) []string {
	t.Helper()
	nodes, err := decodeList[api.Node](ctl(t, h, "node", "ls", "--format", "json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		if n.State == "alive" {
			names = append(names, n.Name)
		}
	}
	slices.Sort(names)
	return names
}

// Finding 4: a member could announce someone else's address as an
// endpoint of its own, drawing its traffic (FDB) and its names (DNS). A
// member — "mallory", a namespace of the underlay that joined with the
// token, so it has a certificate of the cluster's CA and can read the
// gossip key from the store — announces an endpoint with c2's address
// under its own name. The record reaches n1 (network inspect lists it),
// but n1 neither points an FDB entry at mallory nor answers the
// endpoint's names: the store's lease of that address names c2's
// endpoint on n2. "eve", with the gossip key but no certificate, is not
// heard at all: n1 takes only records signed by their writer's
// certificate (records in another member's name are the gossip
// package's TestForgedInAnothersName).
func TestForgedEndpointIgnored(t *testing.T) {
	ctx := testCtx(t)
	c := newCluster(t, "embedded", 2)
	n1, n2 := c.Host(0), c.Host(1)
	out, err := c.AddOutside()
	if err != nil {
		t.Fatal(err)
	}
	ctl(t, n1, "network", "create", "-d", "overlay", "multi")
	waitListed(t, n2, "multi")
	c1, c2 := c.Name("c1"), c.Name("c2")
	createSandbox(t, n1, "multi", c1)
	ip2 := createSandbox(t, n2, "multi", c2)
	netID := inspectNetwork(t, n1, "multi").ID

	kv, err := c.Store()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := kv.Get(ctx, trust.KeyringKey)
	if err != nil {
		t.Fatal(err)
	}
	var ring struct{ Keys []string }
	if err := json.Unmarshal(rec.Value, &ring); err != nil || len(ring.Keys) == 0 {
		t.Fatalf("keyring %s: %v", rec.Value, err)
	}
	var keys [][]byte
	for _, k := range ring.Keys {
		b, _ := base64.StdEncoding.DecodeString(k)
		keys = append(keys, b)
	}
	tok, err := trust.ParseToken(strings.TrimSpace(ctl(t, n1, "cluster", "join-token", "-q")))
	if err != nil {
		t.Fatal(err)
	}
	dir := trust.Dir(t.TempDir())
	if err := trust.Join(ctx, dir, trust.JoinOptions{Addr: "192.0.2.1:2378", Token: tok, Node: "mallory", Dial: out.Dial}); err != nil {
		t.Fatal(err)
	}
	cert, key, roots, err := trust.NodeIdentity(dir, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	var mallory, eve *gossip.Cluster
	err = out.Do(func() error {
		var err error
		mallory, err = gossip.New(gossip.Config{NodeName: "mallory", BindAddr: cluster.OutsideAddr.String(), BindPort: 7946,
			VTEP: cluster.OutsideAddr, Keys: keys, Logger: slog.New(slog.DiscardHandler),
			Identity: &gossip.Identity{Cert: cert, Key: key, Roots: roots}})
		if err != nil {
			return err
		}
		eve, err = gossip.New(gossip.Config{NodeName: "eve", BindAddr: cluster.OutsideAddr.String(), BindPort: 7947,
			VTEP: cluster.OutsideAddr, Keys: keys, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		for _, g := range []*gossip.Cluster{mallory, eve} {
			if _, err := g.Join([]string{"192.0.2.1:7946"}); err != nil {
				return err
			}
		}
		if err := eve.Put(gossip.Endpoint{Network: netID, ID: strings.Repeat("e", 64), Name: "eve", IP: ip2}); err != nil {
			return err
		}
		return mallory.Put(gossip.Endpoint{Network: netID, ID: strings.Repeat("f", 64), Name: "hijack", IP: ip2, Aliases: []string{"hijack-alias"}})
	})
	if mallory != nil {
		defer mallory.Close()
	}
	if eve != nil {
		defer eve.Close()
	}
	if err != nil {
		t.Fatal(err)
	}

	if err := eventually(ctx, func() error {
		if nodes := nodesIn(t, n1, "multi"); !slices.Contains(nodes, "mallory") {
			return fmt.Errorf("n1's inspect lists endpoints on %v", nodes)
		}
		return nil
	}); err != nil {
		t.Fatalf("the forged record never reached n1: %v", err)
	}
	for range 10 { // a while after it arrived
		if slices.Contains(nodesIn(t, n1, "multi"), "eve") {
			t.Fatal("n1 took a record of eve's, which has no certificate")
		}
		if slices.Contains(fdbDestinations(t, n1), cluster.OutsideAddr) {
			t.Fatalf("n1 points an FDB entry at mallory (%s)", cluster.OutsideAddr)
		}
		for _, name := range []string{"hijack", "hijack-alias", "hijack.multi"} {
			if _, ans, err := lookup(ctx, c1, name, dns.TypeA); err != nil || len(ans) != 0 {
				t.Fatalf("c1 resolves %s to %v (%v)", name, ans, err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// c2 itself still resolves and answers.
	if _, ans, err := lookup(ctx, c1, c2, dns.TypeA); err != nil || !slices.Contains(ans, ip2.String()) {
		t.Errorf("c1 resolves %s to %v (%v), want %s", c2, ans, err, ip2)
	}
}
