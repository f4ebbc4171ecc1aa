package gossip

import "sync"

// fifo is an unbounded queue between a producer that must never block (a
// memberlist callback, or the table under its lock) and one consumer
// goroutine.
type fifo[T any] struct {
	wake chan struct{} // capacity 1: "items is not empty"

	mu sync.Mutex
	// Guarded by mu:
	items []T
}

func newFIFO[T any]() *fifo[T] {
	return &fifo[T]{wake: make(chan struct{}, 1)}
}

// push appends v. It never blocks.
func (q *fifo[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits until items are queued or done is closed, and returns everything
// queued, in order; ok is false once done is closed.
func (q *fifo[T]) take(done <-chan struct{}) (batch []T, ok bool) {
	select {
	case <-done:
		return nil, false
	case <-q.wake:
	}
	q.mu.Lock()
	batch, q.items = q.items, nil
	q.mu.Unlock()
	return batch, true
}
