package gossip

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnet/meshnet/testenv/check"
)

// expectIDs returns a check that the converged table holds exactly ids.
func expectIDs(ids map[string]bool) func(string) error {
	return func(d string) error {
		var got []string
		if d != "" {
			for _, line := range strings.Split(d, "\n") {
				k, _, _ := strings.Cut(line, "@")
				got = append(got, k)
			}
		}
		slices.Sort(got)
		var want []string
		for id := range ids {
			want = append(want, id)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("table has %d records, want %d", len(got), len(want))
		}
		return nil
	}
}

func TestConvergence(t *testing.T) {
	for _, size := range []int{3, 20, 100} {
		t.Run(fmt.Sprintf("nodes=%d", size), func(t *testing.T) {
			h := newHarness(t)
			nodes := h.startCluster(size)
			want := make(map[string]bool)
			perNode := max(1, 60/size)
			for i, n := range nodes {
				for j := range perNode {
					network := fmt.Sprintf("net%d", j%2)
					id := fmt.Sprintf("%s-%d", n.Name(), j)
					if err := n.Put(ep(network, id, i*perNode+j)); err != nil {
						t.Fatal(err)
					}
					want[network+"/"+id] = true
				}
			}
			waitConverged(t, nodes, 60*time.Second, expectIDs(want))

			// Delete every other record, from its node (only it may).
			owner := map[string]*testNode{}
			for _, n := range nodes {
				owner[n.Name()] = n
			}
			i := 0
			for k := range want {
				if i++; i%2 == 0 {
					continue
				}
				network, id, _ := strings.Cut(k, "/")
				node, _, _ := strings.Cut(id, "-")
				if err := owner[node].Delete(network, id); err != nil {
					t.Fatal(err)
				}
				delete(want, k)
			}
			waitConverged(t, nodes, 60*time.Second, expectIDs(want))
		})
	}
}

func TestPartitionHeal(t *testing.T) {
	h := newHarness(t)
	nodes := h.startCluster(6)
	left, right := nodes[:3], nodes[3:]
	addrs := func(ns []*testNode) (a []string) {
		for _, n := range ns {
			a = append(a, n.Addr())
		}
		return a
	}
	for i, n := range nodes {
		if err := n.Put(ep("net", "before-"+n.Name(), i)); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, nodes, 30*time.Second, nil)

	h.net.partition(addrs(left), addrs(right))
	// Each side declares the other dead and drops its records.
	h.waitMembers(left, 3)
	h.waitMembers(right, 3)
	for i, n := range nodes {
		if err := n.Put(ep("net", "during-"+n.Name(), 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := left[1].Delete("net", "before-"+left[1].Name()); err != nil {
		t.Fatal(err)
	}
	if err := right[1].Delete("net", "before-"+right[1].Name()); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, left, 30*time.Second, nil)
	waitConverged(t, right, 30*time.Second, nil)

	h.net.heal()
	h.waitMembers(nodes, 6)
	want := map[string]bool{}
	for _, n := range nodes {
		want["net/during-"+n.Name()] = true
		if n != left[1] && n != right[1] {
			want["net/before-"+n.Name()] = true
		}
	}
	waitConverged(t, nodes, 60*time.Second, expectIDs(want))
}

func TestFailedNodeRecordsPurged(t *testing.T) {
	h := newHarness(t)
	nodes := h.startCluster(5)
	victim := nodes[4]
	for i := range 5 {
		if err := victim.Put(ep("net", fmt.Sprintf("v%d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[0].Put(ep("net", "survivor", 99)); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, nodes, 30*time.Second, func(d string) error {
		if n := strings.Count(d, "\n") + 1; n != 6 {
			return fmt.Errorf("%d records, want 6", n)
		}
		return nil
	})

	h.kill(victim) // no Leave: peers must detect the failure
	waitConverged(t, nodes[:4], 30*time.Second, expectIDs(map[string]bool{"net/survivor": true}))
}

func TestLeaveRemovesRecords(t *testing.T) {
	h := newHarness(t)
	nodes := h.startCluster(4)
	if err := nodes[3].Put(ep("net", "leaver", 1)); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, nodes, 30*time.Second, expectIDs(map[string]bool{"net/leaver": true}))
	if err := nodes[3].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, nodes[:3], 30*time.Second, expectIDs(map[string]bool{}))
	h.kill(nodes[3])
	if err := nodes[3].Put(ep("net", "x", 2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
}

// TestEndpointKeepsItsWriter: only the node that holds an endpoint
// writes or deletes its record (finding 4: any member could delete or
// move anyone's). Another node's Put and Delete of it are refused at
// once, and a record forged by another member — a takeover, a tombstone,
// an endpoint placed on another node — is refused by every node, while
// the owner's own record stays everywhere.
func TestEndpointKeepsItsWriter(t *testing.T) {
	h := newHarness(t)
	nodes := h.startCluster(4)
	owner, other := nodes[1], nodes[3]
	if err := owner.Put(ep("net", "k", 1)); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, nodes, 30*time.Second, expectIDs(map[string]bool{"net/k": true}))
	if err := other.Put(ep("net", "k", 2)); !errors.Is(err, ErrNotOwner) {
		t.Errorf("another node's Put of the endpoint: %v, want ErrNotOwner", err)
	}
	if err := other.Delete("net", "k"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("another node's Delete of the endpoint: %v, want ErrNotOwner", err)
	}
	moved := ep("net", "k", 2)
	moved.Node, moved.VTEP = other.Name(), other.cfg.VTEP
	elsewhere := ep("net", "fresh", 3)
	elsewhere.Node, elsewhere.VTEP = owner.Name(), owner.cfg.VTEP
	forged := []wireRecord{
		{Version: version{LTime: 1 << 30, Writer: other.Name()}, Endpoint: moved},                                            // takeover
		{Version: version{LTime: 1 << 30, Writer: other.Name()}, Deleted: true, Endpoint: Endpoint{Network: "net", ID: "k"}}, // someone else's tombstone
		{Version: version{LTime: 1 << 30, Writer: other.Name()}, Endpoint: elsewhere},                                        // on another node
	}
	other.queueBroadcasts(forged)
	for _, r := range forged {
		other.fanout.push(r)
	}
	time.Sleep(time.Second) // the forgeries have been everywhere
	for _, n := range nodes {
		if n == other {
			continue
		}
		eps := n.Endpoints("net")
		if len(eps) != 1 || eps[0].ID != "k" || eps[0].Node != owner.Name() {
			t.Errorf("%s holds %v, want only k on %s", n.Name(), eps, owner.Name())
		}
	}
	var refused uint64
	for _, n := range nodes {
		r := n.Refusals()
		refused += r.Invalid + r.Takeovers
	}
	if refused == 0 {
		t.Error("no node counted a refusal")
	}
}

func TestLateJoinerGetsEverything(t *testing.T) {
	h := newHarness(t)
	nodes := h.startCluster(5)
	want := make(map[string]bool)
	for i, n := range nodes {
		for j := range 10 {
			id := fmt.Sprintf("%s-%d", n.Name(), j)
			if err := n.Put(ep("net", id, i*10+j)); err != nil {
				t.Fatal(err)
			}
			want["net/"+id] = true
		}
	}
	// Node 1 deletes one of its records.
	waitConverged(t, nodes, 30*time.Second, expectIDs(want))
	if err := nodes[1].Delete("net", "n01-3"); err != nil {
		t.Fatal(err)
	}
	delete(want, "net/n01-3")
	waitConverged(t, nodes, 30*time.Second, expectIDs(want))

	late := h.start("late")
	// Before Join the late node has nothing; the join's state exchange
	// brings the whole table at once.
	h.join(late, nodes[2])
	if got, want := len(late.Endpoints("net")), len(want); got != want {
		t.Errorf("right after join, late node has %d endpoints, want %d", got, want)
	}
	waitConverged(t, append(nodes, late), 30*time.Second, expectIDs(want))
}

func TestRestartedNodeReannounces(t *testing.T) {
	h := newHarness(t)
	nodes := h.startCluster(4)
	old := nodes[3]
	for _, id := range []string{"keep", "drop"} {
		if err := old.Put(ep("net", id, len(id))); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, nodes, 30*time.Second, expectIDs(map[string]bool{"net/keep": true, "net/drop": true}))

	// Crash and come back at once under the same name, before peers notice,
	// holding only "keep" (with new content). Its fresh Lamport clock starts
	// at zero, yet it must win over its own earlier records.
	addr := old.Addr()
	h.kill(old)
	back := h.start(old.Name(), func(c *Config) { c.Transport = h.net.newTransportAt(addr) })
	changed := ep("net", "keep", 77)
	if err := back.Put(changed); err != nil {
		t.Fatal(err)
	}
	h.join(back, nodes[0])
	all := append(nodes[:3:3], back)
	waitConverged(t, all, 30*time.Second, func(d string) error {
		if err := expectIDs(map[string]bool{"net/keep": true})(d); err != nil {
			return err
		}
		if !strings.Contains(d, changed.IP.String()) {
			return errors.New("old content of net/keep still present")
		}
		return nil
	})
}

func TestSubscriptionStream(t *testing.T) {
	h := newHarness(t)
	nodes := h.startCluster(2)
	a, b := nodes[0], nodes[1]
	if err := a.Put(ep("net", "pre", 1)); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, nodes, 10*time.Second, expectIDs(map[string]bool{"net/pre": true}))

	sub, err := b.Subscribe("net")
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Subscribe("other")
	if err != nil {
		t.Fatal(err)
	}
	next := func(s *Subscription) Event {
		t.Helper()
		select {
		case ev := <-s.C():
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return Event{}
	}
	ev := next(sub)
	if ev.Kind != EventSnapshot || len(ev.Snapshot) != 1 || ev.Snapshot[0].ID != "pre" {
		t.Fatalf("first event = %+v, want snapshot of [pre]", ev)
	}
	if ev := next(other); ev.Kind != EventSnapshot || len(ev.Snapshot) != 0 {
		t.Fatalf("other network: first event = %+v, want empty snapshot", ev)
	}

	steps := []struct {
		do   func() error
		kind EventKind
		id   string
	}{
		{func() error { return a.Put(ep("net", "x", 2)) }, EventAdd, "x"},
		{func() error { return a.Put(ep("net", "x", 3)) }, EventUpdate, "x"},
		{func() error { return a.Delete("net", "pre") }, EventDelete, "pre"},
		{func() error { return a.Delete("net", "x") }, EventDelete, "x"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
		if ev := next(sub); ev.Kind != s.kind || ev.Endpoint.ID != s.id {
			t.Fatalf("event = %v %s, want %v %s", ev.Kind, ev.Endpoint.ID, s.kind, s.id)
		}
	}
	// Nothing spurious came in between: the next event is the next change.
	if err := a.Put(ep("net", "y", 4)); err != nil {
		t.Fatal(err)
	}
	if ev := next(sub); ev.Kind != EventAdd || ev.Endpoint.ID != "y" {
		t.Fatalf("event = %v %s, want add y", ev.Kind, ev.Endpoint.ID)
	}
	sub.Close()
	for range sub.C() { // drains, then ends when C is closed
	}
	// Closing the cluster ends the remaining subscriptions.
	h.kill(b)
	for range other.C() {
	}
}

// TestLeaveDoesNotStallCluster: while Leave waits for its message to go out,
// subscriptions and membership handling go on.
func TestLeaveDoesNotStallCluster(t *testing.T) {
	h := newHarness(t)
	// Neither node gossips or probes (memberlist piggybacks broadcasts on
	// pings and acks), so b's leave message never goes out and Leave waits
	// for its whole timeout.
	quiet := func(c *Config) {
		c.Timing.GossipInterval = time.Hour
		c.Timing.ProbeInterval = time.Hour
	}
	a := h.start("a", quiet)
	b := h.start("b", quiet)
	h.join(b, a)
	h.waitMembers([]*testNode{a, b}, 2)

	leaveErr := make(chan error, 1)
	go func() { leaveErr <- b.Leave(3 * time.Second) }()
	check.Eventually(t, 10*time.Second, func() error {
		for _, m := range b.Members() {
			if m.Name == "b" {
				return errors.New("b has not started leaving")
			}
		}
		return nil
	})
	subscribed := make(chan error, 1)
	go func() {
		_, err := b.Subscribe("net")
		subscribed <- err
	}()
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-leaveErr:
		t.Fatalf("Subscribe waited for Leave to return (%v)", err)
	}
	if err := <-leaveErr; err == nil {
		t.Error("Leave reported success though its message never went out")
	}
}
