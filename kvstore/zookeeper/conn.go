package zookeeper

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/meshnet/meshnet/kvstore"
)

// dialer opens the client's TCP (or TLS) connections, through cfg.Dial if
// set. abandon makes it refuse further dials and closes the connection in
// use: the session is then left to expire on the server rather than closed
// by the client, which is how a registration outlives Close by its TTL.
type dialer struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	tls  *tls.Config

	mu        sync.Mutex // guards conn and abandoned
	conn      net.Conn
	abandoned bool
}

func newDialer(cfg kvstore.Config, tlsCfg *tls.Config) *dialer {
	d := &dialer{dial: cfg.Dial, tls: tlsCfg}
	if d.dial == nil {
		d.dial = (&net.Dialer{}).DialContext
	}
	return d
}

var errAbandoned = errors.New("connection abandoned")

// Dial implements zk.Dialer.
func (d *dialer) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	d.mu.Lock()
	abandoned := d.abandoned
	d.mu.Unlock()
	if abandoned {
		return nil, errAbandoned
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := d.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		t := d.tls.Clone()
		if t.ServerName == "" {
			t.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(conn, t)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.abandoned {
		conn.Close()
		return nil, errAbandoned
	}
	d.conn = conn
	return conn, nil
}

func (d *dialer) abandon() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.abandoned = true
	if d.conn != nil {
		d.conn.Close()
	}
}

// hostList is a zk.HostProvider that hands out the configured HOST:PORTs
// in turn, unresolved: the dialer resolves names when it connects, so a
// client can be made while DNS or the servers are unavailable (the
// library's default provider resolves every name once, up front). It
// rotates as the library's own provider does.
type hostList struct {
	mu         sync.Mutex // guards curr and last
	hosts      []string
	curr, last int
}

func (h *hostList) Init(servers []string) error {
	if len(servers) == 0 {
		return errors.New("no servers")
	}
	h.hosts, h.curr, h.last = servers, -1, -1
	return nil
}

func (h *hostList) Len() int { return len(h.hosts) }

// Next returns the next server; retryStart is true once every server has
// been tried since the last successful connection, which makes the client
// fail the requests queued meanwhile and wait a second.
func (h *hostList) Next() (server string, retryStart bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.curr = (h.curr + 1) % len(h.hosts)
	retryStart = h.curr == h.last
	if h.last == -1 {
		h.last = 0
	}
	return h.hosts[h.curr], retryStart
}

func (h *hostList) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = h.curr
}

// quiet drops the client library's log lines; failures reach callers as
// errors.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// connect starts a client session with the given timeout; the library
// connects (and reconnects) in the background and calls onEvent, which
// must not block, for every session and watch event.
func connect(endpoints []string, d *dialer, sessionTimeout time.Duration, onEvent zk.EventCallback) (*zk.Conn, error) {
	// The library also sends every event to the returned channel, dropping
	// them when it is full; the callback is what is used here.
	conn, _, err := zk.Connect(endpoints, sessionTimeout, zk.WithDialer(d.Dial),
		zk.WithHostProvider(&hostList{}), zk.WithLogger(quiet{}), zk.WithLogInfo(false),
		zk.WithEventCallback(onEvent))
	return conn, err
}
