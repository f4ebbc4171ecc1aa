package nshost

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

func TestHostsTalkOverUnderlay(t *testing.T) {
	before := currentNS(t)
	u, err := NewUnderlay(Prefix("nsh"))
	if err != nil {
		t.Fatal(err)
	}
	h1, err := u.AddHost("h1", netip.MustParsePrefix("192.0.2.1/24"))
	if err != nil {
		t.Fatal(errorsJoinClose(err, u))
	}
	h2, err := u.AddHost("h2", netip.MustParsePrefix("192.0.2.2/24"))
	if err != nil {
		t.Fatal(errorsJoinClose(err, u))
	}
	paths := []string{u.Path(), h1.Path(), h2.Path()}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("namespace file: %v", err)
		}
	}

	ln, err := h2.Listen("tcp", "192.0.2.2:7000")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h1.Dial(ctx, "tcp", "192.0.2.2:7000")
	if err != nil {
		t.Fatalf("dialing h2 from h1: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	if got := c.LocalAddr().String(); got[:10] != "192.0.2.1:" {
		t.Errorf("connection from %s, want 192.0.2.1", got)
	}
	c.Close()
	ln.Close()

	// Do runs elsewhere and leaves this thread where it was.
	if err := h1.Do(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if after := currentNS(t); !after.Equal(before) {
		t.Fatal("the test's thread changed namespace")
	}

	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Close (%v)", p, err)
		}
	}
	if err := u.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestThroughputMeasuresBytes(t *testing.T) {
	u, err := NewUnderlay(Prefix("nsh"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Error(err)
		}
	})
	h1, err := u.AddHost("h1", netip.MustParsePrefix("198.51.100.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := u.AddHost("h2", netip.MustParsePrefix("198.51.100.2/24"))
	if err != nil {
		t.Fatal(err)
	}
	bps, err := Throughput(context.Background(), h1.NS, h2.NS, "198.51.100.2:0", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if bps <= 0 {
		t.Fatalf("throughput %v bytes/s, want > 0", bps)
	}
}

func TestThroughputReportsCancel(t *testing.T) {
	u, err := NewUnderlay(Prefix("nsc"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Error(err)
		}
	})
	h1, err := u.AddHost("h1", netip.MustParsePrefix("198.51.100.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := u.AddHost("h2", netip.MustParsePrefix("198.51.100.2/24"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(100*time.Millisecond, cancel)
	bps, err := Throughput(ctx, h1.NS, h2.NS, "198.51.100.2:0", time.Hour)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Throughput after cancel = %v, %v; want context.Canceled", bps, err)
	}
}

func currentNS(t *testing.T) netns.NsHandle {
	t.Helper()
	ns, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func errorsJoinClose(err error, u *Underlay) error {
	if cerr := u.Close(); cerr != nil {
		return cerr
	}
	return err
}
