package resolver

// The reactor: one goroutine waits, in one epoll set, on the sockets of
// every attached sandbox, and reads what arrives. A sandbox costs two
// descriptors and a few hundred bytes, not a DNS server with two
// goroutines blocked in reads: on a host with a thousand sandboxes that
// was most of the agent's stacks. Each query is answered on a goroutine of
// its own (an answer may wait for an upstream server), and each TCP
// connection is served on one, for as long as it lasts.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

const (
	// readBatch bounds the datagrams or connections taken from one socket
	// per wake-up, so that one busy sandbox does not starve the others
	// (the set is level-triggered: what is left wakes the reactor again).
	readBatch = 64
	// tcpIdle is how long a TCP connection may wait for its next query
	// (the first included); tcpQueries, how many it may ask.
	tcpIdle    = 8 * time.Second
	tcpQueries = 128
)

// reactor reads every sandbox's sockets. handle makes the reply to a
// query (nil: send none).
type reactor struct {
	epfd, wakefd int
	log          *slog.Logger
	handle       func(sandbox string, a *attached, r *dns.Msg, tcp bool) *dns.Msg
	done         chan struct{} // closed when run returns

	mu    sync.Mutex
	socks map[int]*sock // by descriptor; guarded by mu
}

// sock is one socket of a sandbox: its UDP socket or its TCP listener.
type sock struct {
	fd      int
	tcp     bool
	sandbox string
	a       *attached
	// who, if set, tells the sandbox of each client by its address (a
	// socket on the host, ServeAddress); ok false: not answered.
	who func(client netip.Addr) (sandbox string, ok bool)

	// mu is read-held while the descriptor is used (a read, a reply) and
	// write-held to close it, so that a reply never goes out through a
	// descriptor number that was closed and reused by another sandbox.
	mu     sync.RWMutex
	closed bool // guarded by mu
}

func newReactor(log *slog.Logger, handle func(string, *attached, *dns.Msg, bool) *dns.Msg) (*reactor, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating the DNS epoll set: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("creating the DNS reactor's eventfd: %w", err)
	}
	r := &reactor{epfd: epfd, wakefd: wakefd, log: log, handle: handle, done: make(chan struct{}), socks: map[int]*sock{}}
	if err := r.watch(wakefd); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, err
	}
	go r.run()
	return r, nil
}

func (r *reactor) watch(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("watching a DNS socket: %w", err)
	}
	return nil
}

// add starts reading s.
func (r *reactor) add(s *sock) error {
	r.mu.Lock()
	r.socks[s.fd] = s
	r.mu.Unlock()
	if err := r.watch(s.fd); err != nil {
		r.mu.Lock()
		delete(r.socks, s.fd)
		r.mu.Unlock()
		return err
	}
	return nil
}

// remove stops reading s and closes it.
func (r *reactor) remove(s *sock) {
	r.mu.Lock()
	if r.socks[s.fd] == s {
		delete(r.socks, s.fd)
		unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	}
	r.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		unix.Close(s.fd)
	}
}

// close stops the reactor; the sockets are the caller's to remove.
func (r *reactor) close() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(r.wakefd, one[:])
	<-r.done
	unix.Close(r.wakefd)
	unix.Close(r.epfd)
}

func (r *reactor) run() {
	defer close(r.done)
	events := make([]unix.EpollEvent, 128)
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := unix.EpollWait(r.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			r.log.Error("DNS reactor stopped", "err", err)
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == r.wakefd {
				return
			}
			r.mu.Lock()
			s := r.socks[fd]
			r.mu.Unlock()
			switch {
			case s == nil:
			case s.tcp:
				r.accept(s)
			default:
				r.readUDP(s, buf)
			}
		}
	}
}

// readUDP takes the queries waiting on a UDP socket and answers each on a
// goroutine of its own. A sandbox over its rate is not read at all for a
// while (pause): its socket's buffer fills and the kernel drops the rest
// of a flood, which then costs the agent nothing.
func (r *reactor) readUDP(s *sock, buf []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	for range readBatch {
		if s.who == nil && s.a.limit.Tokens() < 1 {
			r.pause(s)
			return
		}
		n, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			return // EAGAIN: nothing left
		}
		to, ok := from.(*unix.SockaddrInet4)
		if !ok {
			continue // not from IPv4: nobody to answer
		}
		dest := *to
		sandbox, client := s.sandbox, ""
		if s.who != nil {
			if sandbox, ok = s.who(netip.AddrFrom4(dest.Addr)); !ok {
				continue
			}
			client = netip.AddrFrom4(dest.Addr).String()
		}
		if !s.a.allow(client) {
			continue // over the rate: the stub asks again
		}
		q := new(dns.Msg)
		if q.Unpack(buf[:n]) != nil {
			continue // not a DNS query
		}
		s.a.done.Add(1)
		go func() {
			defer s.a.done.Done()
			r.replyUDP(s, sandbox, q, &dest)
		}()
	}
}

func (r *reactor) replyUDP(s *sock, sandbox string, q *dns.Msg, to *unix.SockaddrInet4) {
	resp := r.handle(sandbox, s.a, q, false)
	if resp == nil {
		return
	}
	size := dns.MinMsgSize
	if o := q.IsEdns0(); o != nil {
		size = max(size, int(o.UDPSize()))
	}
	resp.Truncate(size)
	b, err := resp.Pack()
	if err != nil {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.closed {
		unix.Sendto(s.fd, b, unix.MSG_DONTWAIT, to)
	}
}

// pauseFor is how long a sandbox over its rate is not read: about the
// time its limiter takes to allow a few questions again.
const pauseFor = 5 * time.Millisecond

// pause stops watching a UDP socket for pauseFor. It runs on the reactor
// with s.mu read-held.
func (r *reactor) pause(s *sock) {
	off := unix.EpollEvent{Events: 0, Fd: int32(s.fd)}
	if unix.EpollCtl(r.epfd, unix.EPOLL_CTL_MOD, s.fd, &off) != nil {
		return
	}
	time.AfterFunc(pauseFor, func() {
		s.mu.RLock()
		defer s.mu.RUnlock()
		if s.closed {
			return // its descriptor may be another socket's by now
		}
		on := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s.fd)}
		unix.EpollCtl(r.epfd, unix.EPOLL_CTL_MOD, s.fd, &on)
	})
}

// accept takes the connections waiting on a TCP listener and serves each
// on a goroutine of its own.
func (r *reactor) accept(s *sock) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	for range readBatch {
		fd, from, err := unix.Accept4(s.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		sandbox, client := s.sandbox, ""
		if s.who != nil {
			to, ok := from.(*unix.SockaddrInet4)
			if ok {
				sandbox, ok = s.who(netip.AddrFrom4(to.Addr))
				client = netip.AddrFrom4(to.Addr).String()
			}
			if !ok {
				unix.Close(fd)
				continue
			}
		}
		f := os.NewFile(uintptr(fd), "dns-tcp")
		c, err := net.FileConn(f) // a descriptor of its own
		f.Close()
		if err != nil {
			continue
		}
		if !s.a.track(c) { // the sandbox is being detached
			c.Close()
			continue
		}
		s.a.done.Add(1)
		go func() {
			defer s.a.done.Done()
			defer s.a.untrack(c)
			r.serveTCP(s, sandbox, client, c)
		}()
	}
}

// serveTCP answers the queries of one connection, each a two-byte length
// and a message, until the client is done, idle for tcpIdle, or has asked
// tcpQueries.
func (r *reactor) serveTCP(s *sock, sandbox, client string, c net.Conn) {
	defer c.Close()
	for range tcpQueries {
		c.SetDeadline(time.Now().Add(tcpIdle))
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		q := new(dns.Msg)
		if q.Unpack(msg) != nil || !s.a.allow(client) {
			return
		}
		resp := r.handle(sandbox, s.a, q, true)
		if resp == nil {
			continue
		}
		b, err := resp.Pack()
		if err != nil || len(b) > dns.MaxMsgSize {
			return
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(b)), uint16(len(b)))
		if _, err := c.Write(append(out, b...)); err != nil {
			return
		}
	}
}

// openSockets makes a sandbox's UDP socket and TCP listener on Address at
// ports the kernel picks; the caller runs it inside the sandbox's
// namespace.
func openSockets() (udp, tcp int, udpPort, tcpPort int, err error) {
	return openSocketsAt(Address, 0)
}

// openSocketsAt makes a UDP socket and a TCP listener on addr:port (port
// 0: one the kernel picks, the same for neither) in the caller's
// namespace.
func openSocketsAt(at netip.Addr, listenPort int) (udp, tcp int, udpPort, tcpPort int, err error) {
	addr := &unix.SockaddrInet4{Addr: at.As4(), Port: listenPort}
	port := func(fd int) (int, error) {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return 0, err
		}
		return sa.(*unix.SockaddrInet4).Port, nil
	}
	udp, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, 0, 0, err
	}
	tcp, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err == nil && listenPort != 0 { // a fixed port, maybe in TIME_WAIT after a restart
		err = unix.SetsockoptInt(tcp, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	if err == nil {
		err = errors.Join(unix.Bind(udp, addr), unix.Bind(tcp, addr))
	}
	if err == nil {
		err = unix.Listen(tcp, 128)
	}
	if err == nil {
		udpPort, err = port(udp)
	}
	if err == nil {
		tcpPort, err = port(tcp)
	}
	if err != nil {
		unix.Close(udp)
		if tcp >= 0 {
			unix.Close(tcp)
		}
		return -1, -1, 0, 0, err
	}
	return udp, tcp, udpPort, tcpPort, nil
}
