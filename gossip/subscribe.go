package gossip

import (
	"sync"
	"sync/atomic"
)

// Subscription is an ordered stream of one network's changes: first an
// EventSnapshot with every endpoint, then one Add, Update or Delete per
// change, in the order this node applied them. Applying the events in order
// to the snapshot always yields the node's current view of the network.
//
// The table never waits for a subscriber: events queue inside the
// subscription and a goroutine owned by the Cluster feeds them to C. A
// consumer that falls maxQueue events behind finds them replaced by one
// EventSnapshot, which it applies as it did the first: a flood costs
// bounded memory, and never a wrong view. C is closed when the subscription or the Cluster is closed.
type Subscription struct {
	network string
	c       chan Event
	done    chan struct{} // closed by Close
	queue   *fifo[Event]
	cancel  func() // unregisters from the table
	once    sync.Once
}

func newSubscription(network string, dropped *atomic.Uint64) *Subscription {
	return &Subscription{
		network: network,
		c:       make(chan Event),
		done:    make(chan struct{}),
		queue:   newFIFO[Event](dropped),
	}
}

// C returns the event channel.
func (s *Subscription) C() <-chan Event { return s.c }

// Network returns the subscribed network.
func (s *Subscription) Network() string { return s.network }

// Close stops the stream; C is closed shortly after. It is idempotent.
func (s *Subscription) Close() {
	s.once.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		close(s.done)
	})
}

// push queues an event. It never blocks (callers hold the table lock).
func (s *Subscription) push(ev Event) { s.queue.push(ev) }

// run delivers queued events to C until Close; it closes C on return.
func (s *Subscription) run() {
	defer close(s.c)
	for {
		batch, ok := s.queue.take(s.done)
		if !ok {
			return
		}
		for _, ev := range batch {
			select {
			case s.c <- ev:
			case <-s.done:
				return
			}
		}
	}
}
