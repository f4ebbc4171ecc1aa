package gossip

// A guard in front of memberlist's stream handling. memberlist (v0.5)
// trusts the push/pull header of a TCP stream: a node count of −1 panics
// it (makeslice), and a user-state or user-message length of gigabytes is
// allocated before a byte of it arrives. Every stream, accepted or dialed,
// is wrapped: before memberlist reads the first message, the guard reads
// that message itself — decrypting it with the keyring and decompressing
// it, within bounds — checks the lengths memberlist will trust, and then
// replays the bytes it read. A message that fails is an error to
// memberlist's read, which drops the connection.

import (
	"bufio"
	"bytes"
	"compress/lzw"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// memberlist's message types and framing, as it puts them on the wire.
const (
	wirePushPull  = 6
	wireUserMsg   = 8
	wireCompress  = 9
	wireEncrypt   = 10
	wireHasLabel  = 244
	gcmNonceSize  = 12
	lzwLiteral    = 8
	encryptHeader = 5 // type byte and big-endian length
)

// Bounds of one stream message.
const (
	// maxStreamMessage matches memberlist's own limit of a push/pull
	// state (20 MB).
	maxStreamMessage = 20 << 20
	// maxDecompressed bounds an LZW stream's output (LZW expands up to
	// some 2,700 times).
	maxDecompressed = 64 << 20
	// maxPushNodes bounds a push/pull's node count.
	maxPushNodes = 1 << 16
)

var errGuard = errors.New("gossip stream refused")

// guardedTransport is memberlist's network transport with every stream
// wrapped in a guardedConn.
type guardedTransport struct {
	memberlist.NodeAwareTransport
	keys    func() [][]byte // the keyring's keys; nil when gossip is in clear
	streams chan net.Conn
	done    chan struct{}
	stop    sync.Once
}

func newGuardedTransport(inner memberlist.NodeAwareTransport, keys func() [][]byte) *guardedTransport {
	t := &guardedTransport{NodeAwareTransport: inner, keys: keys, streams: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			select {
			case c := <-inner.StreamCh():
				select {
				case t.streams <- t.wrap(c):
				case <-t.done:
					c.Close()
					return
				}
			case <-t.done:
				return
			}
		}
	}()
	return t
}

func (t *guardedTransport) wrap(c net.Conn) net.Conn {
	return &guardedConn{Conn: c, keys: t.keys}
}

func (t *guardedTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *guardedTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NodeAwareTransport.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return t.wrap(c), nil
}

func (t *guardedTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *guardedTransport) Shutdown() error {
	t.stop.Do(func() { close(t.done) })
	return t.NodeAwareTransport.Shutdown()
}

// guardedConn checks the first message read from it (see the top of the
// file); later reads pass through.
type guardedConn struct {
	net.Conn
	keys    func() [][]byte
	checked bool
	pending []byte // bytes the check read, replayed first
}

func (g *guardedConn) Read(p []byte) (int, error) {
	if !g.checked {
		g.checked = true
		rec := &recorder{r: g.Conn}
		if err := checkStream(rec, g.keys); err != nil {
			return 0, fmt.Errorf("%w: %v", errGuard, err)
		}
		g.pending = rec.buf
	}
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// recorder keeps every byte read through it.
type recorder struct {
	r   io.Reader
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// checkStream reads the first message of a stream and checks it.
func checkStream(r io.Reader, keys func() [][]byte) error {
	br := bufio.NewReader(io.LimitReader(r, maxStreamMessage+encryptHeader))
	t, err := br.ReadByte()
	if err != nil {
		return err
	}
	switch {
	case t == wireHasLabel:
		return errors.New("stream labels are not used")
	case t == wireEncrypt:
		var n [4]byte
		if _, err := io.ReadFull(br, n[:]); err != nil {
			return err
		}
		size := binary.BigEndian.Uint32(n[:])
		if size > maxStreamMessage {
			return fmt.Errorf("an encrypted message of %d bytes", size)
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(br, msg); err != nil {
			return err
		}
		plain, err := decrypt(keys, msg, append([]byte{t}, n[:]...))
		if err != nil {
			return err
		}
		if len(plain) == 0 {
			return errors.New("an empty message")
		}
		return checkPlain(plain[0], bytes.NewReader(plain[1:]))
	}
	return checkPlain(t, br)
}

// decrypt opens an encrypted message as memberlist seals it: a version
// byte (0: PKCS#7 padded, 1: not), a nonce, AES-GCM with the header as
// additional data; any key of the keyring may have sealed it.
func decrypt(keys func() [][]byte, msg, header []byte) ([]byte, error) {
	if keys == nil {
		return nil, errors.New("an encrypted message, and gossip is in clear")
	}
	if len(msg) < 1+gcmNonceSize+16 || msg[0] > 1 {
		return nil, errors.New("a malformed encrypted message")
	}
	for _, k := range keys() {
		block, err := aes.NewCipher(k)
		if err != nil {
			continue
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			continue
		}
		plain, err := gcm.Open(nil, msg[1:1+gcmNonceSize], msg[1+gcmNonceSize:], header)
		if err != nil {
			continue
		}
		if msg[0] == 0 { // PKCS#7
			if len(plain) == 0 || int(plain[len(plain)-1]) > len(plain) {
				return nil, errors.New("a malformed padding")
			}
			plain = plain[:len(plain)-int(plain[len(plain)-1])]
		}
		return plain, nil
	}
	return nil, errors.New("a message no key of the keyring opens")
}

// checkPlain checks a message of type t whose body r holds: a compressed
// one is opened (bounded) and checked in turn; a push/pull's node count
// and user-state length and a user message's length must be sane.
func checkPlain(t byte, r io.Reader) error {
	dec := codec.NewDecoder(r, &codec.MsgpackHandle{})
	switch t {
	case wireCompress:
		var c struct {
			Algo int
			Buf  []byte
		}
		if err := dec.Decode(&c); err != nil {
			return fmt.Errorf("a malformed compressed message: %v", err)
		}
		if c.Algo != 0 {
			return fmt.Errorf("compression algorithm %d", c.Algo)
		}
		lr := lzw.NewReader(bytes.NewReader(c.Buf), lzw.LSB, lzwLiteral)
		defer lr.Close()
		out, err := io.ReadAll(io.LimitReader(lr, maxDecompressed+1))
		if err != nil {
			return fmt.Errorf("a malformed compressed message: %v", err)
		}
		if len(out) > maxDecompressed || len(out) == 0 {
			return fmt.Errorf("a compressed message of %d bytes or more", len(out))
		}
		if out[0] == wireCompress {
			return errors.New("a compressed message inside a compressed one")
		}
		return checkPlain(out[0], bytes.NewReader(out[1:]))
	case wirePushPull:
		var h struct {
			Nodes        int
			UserStateLen int
			Join         bool
		}
		if err := dec.Decode(&h); err != nil {
			return fmt.Errorf("a malformed push/pull header: %v", err)
		}
		if h.Nodes < 0 || h.Nodes > maxPushNodes {
			return fmt.Errorf("a push/pull of %d nodes", h.Nodes)
		}
		if h.UserStateLen < 0 || h.UserStateLen > maxStreamMessage {
			return fmt.Errorf("a push/pull with %d bytes of user state", h.UserStateLen)
		}
	case wireUserMsg:
		var h struct{ UserMsgLen int }
		if err := dec.Decode(&h); err != nil {
			return fmt.Errorf("a malformed user message header: %v", err)
		}
		if h.UserMsgLen < 0 || h.UserMsgLen > maxStreamMessage {
			return fmt.Errorf("a user message of %d bytes", h.UserMsgLen)
		}
	}
	return nil
}

// guard puts the stream guard in front of mc's transport, making
// memberlist's network transport first when mc has none (as memberlist
// would, a free port when BindPort is 0).
func guard(mc *memberlist.Config) error {
	var keys func() [][]byte
	if mc.Keyring != nil {
		keys = mc.Keyring.GetKeys
	}
	if mc.Transport == nil {
		nc := &memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger}
		var nt *memberlist.NetTransport
		var err error
		for try := 0; try < 10; try++ { // a free port for TCP may be taken for UDP: try again
			if nt, err = memberlist.NewNetTransport(nc); err == nil || mc.BindPort != 0 {
				break
			}
		}
		if err != nil {
			return err
		}
		if mc.BindPort == 0 {
			mc.BindPort = nt.GetAutoBindPort()
			mc.AdvertisePort = mc.BindPort
		}
		mc.Transport = newGuardedTransport(nt, keys)
		return nil
	}
	if nat, ok := mc.Transport.(memberlist.NodeAwareTransport); ok {
		mc.Transport = newGuardedTransport(nat, keys)
	}
	return nil
}
