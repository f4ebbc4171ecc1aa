package gossip

import (
	"bytes"
	"compress/lzw"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// msgpackOf encodes v as memberlist does.
func msgpackOf(t testing.TB, v any) []byte {
	var b bytes.Buffer
	if err := codec.NewEncoder(&b, &codec.MsgpackHandle{}).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type pushPull struct {
	Nodes        int
	UserStateLen int
	Join         bool
}

// sealed is msg encrypted with key as memberlist frames a stream message.
func sealed(key, msg []byte) []byte {
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	header := make([]byte, 5)
	header[0] = wireEncrypt
	binary.BigEndian.PutUint32(header[1:], uint32(1+gcmNonceSize+len(msg)+gcm.Overhead()))
	nonce := make([]byte, gcmNonceSize)
	rand.Read(nonce)
	out := append(append(append([]byte{}, header...), 1), nonce...)
	return gcm.Seal(out, nonce, msg, header)
}

// compressed is msg in memberlist's compress wrapper.
func compressed(t testing.TB, msg []byte) []byte {
	var buf bytes.Buffer
	w := lzw.NewWriter(&buf, lzw.LSB, lzwLiteral)
	w.Write(msg)
	w.Close()
	return append([]byte{wireCompress}, msgpackOf(t, struct {
		Algo int
		Buf  []byte
	}{0, buf.Bytes()})...)
}

// crafted are the streams of finding 6 and their kin: each would panic
// memberlist or make it allocate gigabytes.
func crafted(t testing.TB, key []byte) map[string][]byte {
	pp := func(h pushPull) []byte { return append([]byte{wirePushPull}, msgpackOf(t, h)...) }
	m := map[string][]byte{
		"negative node count":       pp(pushPull{Nodes: -1}),
		"huge node count":           pp(pushPull{Nodes: 1 << 40}),
		"negative user state":       pp(pushPull{UserStateLen: -5}),
		"huge user state":           pp(pushPull{UserStateLen: 1 << 40}),
		"huge user message":         append([]byte{wireUserMsg}, msgpackOf(t, struct{ UserMsgLen int }{1 << 40})...),
		"compressed negative nodes": compressed(t, pp(pushPull{Nodes: -1})),
		"compressed bomb":           compressed(t, append([]byte{wirePushPull}, make([]byte, maxDecompressed+10)...)),
		"label":                     {wireHasLabel, 3, 'a', 'b', 'c'},
	}
	if key != nil {
		m["encrypted negative node count"] = sealed(key, pp(pushPull{Nodes: -1}))
		m["encrypted compressed negative node count"] = sealed(key, compressed(t, pp(pushPull{Nodes: -1})))
		m["encrypted with a length of 4 GB"] = []byte{wireEncrypt, 0xff, 0xff, 0xff, 0xff, 1}
	}
	return m
}

// TestGuardedStreams: one TCP connection carrying a push/pull with node
// count −1 killed the agent (finding 6; here it would crash the test
// binary). Every crafted stream is now refused, and the node goes on
// working: another node joins it afterwards. With a key, the same
// streams sealed with the cluster's key (a member gone bad) are refused
// too.
func TestGuardedStreams(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		var key []byte
		if keyed {
			key = make([]byte, 32)
			rand.Read(key)
		}
		log := slog.New(slog.DiscardHandler)
		start := func(name string) *Cluster {
			c, err := New(Config{NodeName: name, BindAddr: "127.0.0.1", BindPort: -1, VTEP: netip.MustParseAddr("192.0.2.9"),
				SecretKey: key, Logger: log, Timing: fastTiming()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		victim := start("victim")
		for name, msg := range crafted(t, key) {
			conn, err := net.DialTimeout("tcp", victim.Addr(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			conn.Write(msg)
			// The victim drops the connection (or answers nothing).
			buf := make([]byte, 1)
			n, _ := conn.Read(buf)
			conn.Close()
			if n > 0 && buf[0] == wirePushPull {
				t.Errorf("keyed %v, %s: the victim answered with its state", keyed, name)
			}
		}
		friend := start("friend")
		if _, err := friend.Join([]string{victim.Addr()}); err != nil {
			t.Fatalf("keyed %v: after the crafted streams, a node cannot join: %v", keyed, err)
		}
	}
}

// fastTiming is memberlist's timing for tests on loopback.
func fastTiming() Timing {
	return Timing{GossipInterval: 20 * time.Millisecond, ProbeInterval: 200 * time.Millisecond,
		ProbeTimeout: 100 * time.Millisecond, PushPullInterval: time.Second, TCPTimeout: 2 * time.Second}
}

// FuzzCheckStream: no stream panics the guard, and the crafted ones (the
// seeds) are refused.
func FuzzCheckStream(f *testing.F) {
	key := make([]byte, 16)
	keys := func() [][]byte { return [][]byte{key} }
	for _, m := range crafted(f, key) {
		if len(m) < 1<<20 {
			f.Add(m)
		}
	}
	f.Add(append([]byte{wirePushPull}, msgpackOf(f, pushPull{Nodes: 2, UserStateLen: 10})...))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := checkStream(bytes.NewReader(data), keys)
		if err != nil {
			return
		}
		// Accepted: a push/pull's header, read as memberlist reads it,
		// is within bounds.
		if len(data) > 0 && data[0] == wirePushPull {
			var h pushPull
			if codec.NewDecoderBytes(data[1:], &codec.MsgpackHandle{}).Decode(&h) == nil &&
				(h.Nodes < 0 || h.Nodes > maxPushNodes || h.UserStateLen < 0 || h.UserStateLen > maxStreamMessage) {
				t.Errorf("accepted a push/pull of %d nodes and %d bytes", h.Nodes, h.UserStateLen)
			}
		}
	})
}

// TestCraftedSeedsRefused: every crafted stream is refused by the check
// alone.
func TestCraftedSeedsRefused(t *testing.T) {
	key := make([]byte, 16)
	for name, m := range crafted(t, key) {
		if err := checkStream(bytes.NewReader(m), func() [][]byte { return [][]byte{key} }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := append([]byte{wirePushPull}, msgpackOf(t, pushPull{Nodes: 2, UserStateLen: 10})...)
	if err := checkStream(bytes.NewReader(ok), nil); err != nil {
		t.Errorf("a sane push/pull header: %v", err)
	}
}
