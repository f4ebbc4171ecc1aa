package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/meshnet/meshnet/testenv/nshost"
)

// probe sends a numbered UDP datagram to an echo server every interval
// and records when each answer came back, so that a window without
// answers (an agent restart) can be measured afterwards.
type probe struct {
	conn     net.Conn
	interval time.Duration
	wg       sync.WaitGroup
	stop     context.CancelFunc

	mu   sync.Mutex
	sent []time.Time // guarded by mu; by sequence number
	got  []time.Time // guarded by mu; answer times, in order
	seen map[uint64]bool
}

// startProbe starts probing addr over UDP from namespace from.
func startProbe(ctx context.Context, from *nshost.NS, addr string, interval time.Duration) (*probe, error) {
	c, err := from.Dial(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	p := &probe{conn: c, interval: interval, stop: stop, seen: map[uint64]bool{}}
	p.wg.Go(func() { p.send(ctx) })
	p.wg.Go(p.receive)
	return p, nil
}

func (p *probe) send(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	var b [8]byte
	for {
		p.mu.Lock()
		seq := uint64(len(p.sent))
		p.sent = append(p.sent, time.Now())
		p.mu.Unlock()
		binary.BigEndian.PutUint64(b[:], seq)
		_, _ = p.conn.Write(b[:]) // a refused or lost datagram shows as no answer
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *probe) receive() {
	b := make([]byte, 64)
	for {
		k, err := p.conn.Read(b)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // an ICMP error (refused, unreachable) reported on the socket
		}
		if k != 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(b)
		now := time.Now()
		p.mu.Lock()
		if seq < uint64(len(p.sent)) && !p.seen[seq] {
			p.seen[seq] = true
			p.got = append(p.got, now)
		}
		p.mu.Unlock()
	}
}

// Stop ends the probe.
func (p *probe) Stop() {
	p.stop()
	time.Sleep(p.interval * 10) // let late answers arrive
	p.conn.Close()
	p.wg.Wait()
}

// mark is a point in the probe's history.
type mark struct {
	seq int
	at  time.Time
}

// Mark returns the current point of the probe.
func (p *probe) Mark() mark {
	p.mu.Lock()
	defer p.mu.Unlock()
	return mark{seq: len(p.sent), at: time.Now()}
}

// window is what the probe saw between two marks.
type window struct {
	Sent, Answered int
	// LongestGap is the longest time without an answer: between two
	// answers, or between a mark and the nearest answer.
	LongestGap time.Duration
	// AnsweredAfter reports answers in the last quarter of the window:
	// connectivity came back.
	AnsweredAfter bool
}

// Between summarises the probe from mark a to mark b.
func (p *probe) Between(a, b mark) window {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := window{Sent: b.seq - a.seq}
	for seq := a.seq; seq < b.seq; seq++ {
		if p.seen[uint64(seq)] {
			w.Answered++
		}
	}
	last := a.at
	lateFrom := b.at.Add(-b.at.Sub(a.at) / 4)
	for _, at := range p.got {
		if at.Before(a.at) || at.After(b.at) {
			continue
		}
		w.LongestGap = max(w.LongestGap, at.Sub(last))
		last = at
		if at.After(lateFrom) {
			w.AnsweredAfter = true
		}
	}
	w.LongestGap = max(w.LongestGap, b.at.Sub(last))
	return w
}
