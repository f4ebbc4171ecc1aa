package nshost

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

func TestEchoAndPingAcrossUnderlay(t *testing.T) {
	u, err := NewUnderlay(Prefix("tr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	h1, err := u.AddHost("h1", netip.MustParsePrefix("192.0.2.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := u.AddHost("h2", netip.MustParsePrefix("192.0.2.2/24"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rtts, err := h1.Ping(ctx, netip.MustParseAddr("192.0.2.2"), 3, 10*time.Millisecond, 2*time.Second)
	if err != nil || len(rtts) != 3 {
		t.Fatalf("ping: %v, %v", rtts, err)
	}
	if _, err := h1.Ping(ctx, netip.MustParseAddr("192.0.2.9"), 1, 0, 200*time.Millisecond); err == nil {
		t.Error("ping of an absent address succeeded")
	}

	for _, network := range []string{"tcp", "udp"} {
		e, err := h2.ServeEcho(network, "192.0.2.2:0")
		if err != nil {
			t.Fatal(err)
		}
		c, err := h1.Dial(ctx, network, e.Addr.String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := RoundTrip(ctx, c, []byte("hello "+network)); err != nil {
			t.Errorf("%s echo: %v", network, err)
		}
		c.Close()
		e.Close()
	}

	// A namespace opened by name is released, not deleted, by Close.
	ns, err := OpenNS(h2.Name)
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	if _, err := h1.Ping(ctx, netip.MustParseAddr("192.0.2.2"), 1, 0, 2*time.Second); err != nil {
		t.Errorf("h2 gone after closing a borrowed handle: %v", err)
	}
}

func TestRemoveAllByPrefix(t *testing.T) {
	p := Prefix("rm")
	for _, n := range []string{"-a", "-b"} {
		ns, err := NewNS(p + n)
		if err != nil {
			t.Fatal(err)
		}
		ns.handle.Close() // keep the namespace, drop the handle
	}
	if err := RemoveAll(p + "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenNS(p + "-a"); err == nil {
		t.Error("namespace left after RemoveAll")
	}
	if err := RemoveAll(""); err == nil {
		t.Error("RemoveAll with an empty prefix was accepted")
	}
}
