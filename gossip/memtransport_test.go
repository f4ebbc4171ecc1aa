package gossip

// An in-memory memberlist transport with partitions and byte counters, so
// that one test process can run a hundred nodes, cut the network between
// groups of them, and measure gossip traffic. Packets behave like UDP
// (dropped when unreachable or when the receiver is backed up); streams are
// net.Pipe pairs and fail to dial across a partition.

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

type memNetwork struct {
	mu sync.RWMutex
	// Guarded by mu:
	nodes    map[string]*memTransport // by address
	group    map[string]int           // address → partition group (absent: 0)
	nextPort int
}

func newMemNetwork() *memNetwork {
	return &memNetwork{
		nodes:    make(map[string]*memTransport),
		group:    make(map[string]int),
		nextPort: 20000,
	}
}

func (n *memNetwork) newTransport() *memTransport {
	n.mu.Lock()
	n.nextPort++
	addr := "127.0.0.1:" + strconv.Itoa(n.nextPort)
	n.mu.Unlock()
	return n.newTransportAt(addr)
}

// newTransportAt attaches a transport at a given address (a restarted node
// on the same host).
func (n *memNetwork) newTransportAt(addr string) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := &memTransport{
		net:      n,
		addr:     memAddr(addr),
		packetCh: make(chan *memberlist.Packet, 4096),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	n.nodes[string(t.addr)] = t
	return t
}

// partition splits the network: addresses in different groups cannot talk;
// addresses not listed are in group 0 together with the first group.
func (n *memNetwork) partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.group)
	for i, g := range groups {
		for _, a := range g {
			n.group[a] = i
		}
	}
}

func (n *memNetwork) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.group)
}

// peer returns the transport at addr if from can reach it.
func (n *memNetwork) peer(from, to string) (*memTransport, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	t, ok := n.nodes[to]
	if !ok || n.group[from] != n.group[to] {
		return nil, false
	}
	return t, true
}

func (n *memNetwork) remove(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.nodes, addr)
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

type memTransport struct {
	net      *memNetwork
	addr     memAddr
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once

	sentBytes   atomic.Int64 // packets and stream bytes written by this node
	sentPackets atomic.Int64
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, err := net.SplitHostPort(string(t.addr))
	if err != nil {
		return nil, 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, 0, err
	}
	return net.ParseIP(host), p, nil
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	t.sentBytes.Add(int64(len(b)))
	t.sentPackets.Add(1)
	dst, ok := t.net.peer(string(t.addr), a.Addr)
	if !ok {
		return now, nil // lost, like UDP
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: t.addr, Timestamp: now}
	select {
	case dst.packetCh <- p:
	default: // receiver backed up: dropped
	}
	return now, nil
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	dst, ok := t.net.peer(string(t.addr), a.Addr)
	if !ok {
		return nil, fmt.Errorf("dial %s: connection refused", a.Addr)
	}
	local, remote := net.Pipe()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dst.streamCh <- &countingConn{Conn: remote, n: &dst.sentBytes, remoteAddr: t.addr}:
		return &countingConn{Conn: local, n: &t.sentBytes, remoteAddr: dst.addr}, nil
	case <-dst.done:
	case <-t.done:
	case <-timer.C:
	}
	local.Close()
	remote.Close()
	return nil, fmt.Errorf("dial %s: timeout", a.Addr)
}

func (t *memTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *memTransport) Shutdown() error {
	t.once.Do(func() {
		t.net.remove(string(t.addr))
		close(t.done)
	})
	return nil
}

type countingConn struct {
	net.Conn
	n          *atomic.Int64
	remoteAddr net.Addr
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingConn) RemoteAddr() net.Addr { return c.remoteAddr }
