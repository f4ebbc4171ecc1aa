package nshost

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Echo is a TCP or UDP echo server running in a namespace.
type Echo struct {
	Addr   net.Addr // where it listens
	closer io.Closer
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool // open TCP connections; guarded by mu
}

// ServeEcho starts an echo server in the namespace on addr ("0.0.0.0:7"
// style): network "tcp" echoes every connection's bytes back until the
// peer closes, "udp" sends every datagram back to its sender.
func (n *NS) ServeEcho(network, addr string) (*Echo, error) {
	e := &Echo{conns: map[net.Conn]bool{}}
	switch network {
	case "tcp", "tcp4":
		ln, err := n.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		e.Addr, e.closer = ln.Addr(), ln
		e.wg.Go(func() { e.serveTCP(ln) })
	case "udp", "udp4":
		pc, err := n.ListenPacket(network, addr)
		if err != nil {
			return nil, err
		}
		e.Addr, e.closer = pc.LocalAddr(), pc
		e.wg.Go(func() { serveUDPEcho(pc) })
	default:
		return nil, fmt.Errorf("echo over %q: want tcp or udp", network)
	}
	return e, nil
}

// Close stops the server, closes its open TCP connections (a peer that
// can no longer be reached would never close its own) and waits for it.
func (e *Echo) Close() error {
	err := e.closer.Close()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.conns = nil
	e.mu.Unlock()
	e.wg.Wait()
	return err
}

func (e *Echo) serveTCP(ln net.Listener) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		if e.conns == nil { // closed meanwhile
			e.mu.Unlock()
			c.Close()
			return
		}
		e.conns[c] = true
		e.mu.Unlock()
		conns.Go(func() {
			defer func() {
				c.Close()
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
			}()
			_, _ = io.Copy(c, c)
		})
	}
}

func serveUDPEcho(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		k, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:k], from)
	}
}

// RoundTrip writes msg on c and reads the same number of bytes back, as
// an echo server answers; it returns the time that took. The deadline
// of ctx, if any, bounds it.
func RoundTrip(ctx context.Context, c net.Conn, msg []byte) (time.Duration, error) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
		defer c.SetDeadline(time.Time{})
	}
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		return 0, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return 0, err
	}
	rtt := time.Since(start)
	if string(got) != string(msg) {
		return 0, fmt.Errorf("echo answered %q to %q", got, msg)
	}
	return rtt, nil
}

// Ping sends count ICMP echo requests from the namespace to dst, one
// every interval, waiting at most wait for each reply, and returns the
// round-trip times of the replies. It fails if no reply came. Equivalent
// to: `ip netns exec NAME ping -c COUNT -i INTERVAL -W WAIT DST`, without
// needing the ping binary (a raw socket; the caller must be root).
func (n *NS) Ping(ctx context.Context, dst netip.Addr, count int, interval, wait time.Duration) ([]time.Duration, error) {
	if !dst.Is4() {
		return nil, fmt.Errorf("ping %s: only IPv4", dst)
	}
	pc, err := n.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("opening ICMP socket in %s: %w", n.Name, err)
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { _ = pc.SetDeadline(time.Now()) })
	defer stop()
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	var rtts []time.Duration
	var last error
	for seq := 1; seq <= count && ctx.Err() == nil; seq++ {
		if seq > 1 {
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
		rtt, err := echoOnce(pc, dst, id, uint16(seq), wait)
		if err != nil {
			last = err
			continue
		}
		rtts = append(rtts, rtt)
	}
	if err := ctx.Err(); err != nil && len(rtts) == 0 {
		return nil, err
	}
	if len(rtts) == 0 {
		return nil, fmt.Errorf("ping %s from %s: no reply to %d requests (%v)", dst, n.Name, count, last)
	}
	return rtts, nil
}

// echoOnce sends one echo request and waits for its reply.
func echoOnce(pc net.PacketConn, dst netip.Addr, id, seq uint16, wait time.Duration) (time.Duration, error) {
	msg := make([]byte, 8+32)
	msg[0] = 8 // echo request
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], "meshnet test echo request 012345")
	binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	start := time.Now()
	deadline := start.Add(wait)
	if _, err := pc.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return 0, err
	}
	buf := make([]byte, 1500)
	for {
		_ = pc.SetReadDeadline(deadline)
		k, from, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, fmt.Errorf("no reply within %s", wait)
			}
			return 0, err
		}
		ip, ok := from.(*net.IPAddr)
		if !ok || k < 8 || buf[0] != 0 || !ip.IP.Equal(dst.AsSlice()) ||
			binary.BigEndian.Uint16(buf[4:]) != id || binary.BigEndian.Uint16(buf[6:]) != seq {
			continue // someone else's ICMP
		}
		return time.Since(start), nil
	}
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
