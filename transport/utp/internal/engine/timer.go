package engine

import (
	"container/heap"
	"sync"
	"time"
)

// timerQueue runs every connection's timers of one endpoint: each connection
// has a single next deadline (the earliest of its retransmission, probe,
// pacing, delayed-ACK and close timers) in a heap, and one runtime timer
// fires at the earliest of them. The timer's function runs the due
// connections' timers; no goroutine waits in between, so an idle endpoint
// costs a timer, not a goroutine's stack.
//
// Lock order: Conn.mu, then timerQueue.mu. onTimer runs with no lock held.
type timerQueue struct {
	mu      sync.Mutex
	h       timerHeap
	t       *time.Timer // fires fire at armedAt
	armedAt time.Time   // zero: t is not set to fire
	firing  bool        // fire is running the due connections; it rearms t when it ends
	stopped bool
	ended   sync.Cond // broadcast when a run of fire ends; L is &mu
	due     []*Conn   // fire's, reused
}

type timerHeap []*Conn

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].timerAt.Before(h[j].timerAt) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timerIdx, h[j].timerIdx = i, j
}
func (h *timerHeap) Push(x any) {
	c := x.(*Conn)
	c.timerIdx = len(*h)
	*h = append(*h, c)
}
func (h *timerHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.timerIdx = -1
	return c
}

func newTimerQueue() *timerQueue {
	q := &timerQueue{}
	q.ended.L = &q.mu
	q.t = time.AfterFunc(time.Hour, q.fire)
	q.t.Stop()
	return q
}

// schedule sets c's deadline to at; the zero time removes it.
func (q *timerQueue) schedule(c *Conn, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if at.Equal(c.timerAt) && (c.timerIdx >= 0) == !at.IsZero() {
		return
	}
	c.timerAt = at
	switch {
	case at.IsZero():
		if c.timerIdx >= 0 {
			heap.Remove(&q.h, c.timerIdx)
		}
	case c.timerIdx >= 0:
		heap.Fix(&q.h, c.timerIdx)
	default:
		heap.Push(&q.h, c)
	}
	q.arm()
}

// arm makes the timer fire by the earliest deadline. Called with q.mu held.
//
// It moves the timer only earlier: when the earliest deadline goes later or away (an acknowledgement stops the
// retransmission timer, a sent packet carries the delayed acknowledgement), the timer fires early, finds nothing
// due and is set again then. Every send and every received packet moves some deadline, and setting a runtime timer
// earlier than the others may wake another thread to watch it: a timer moved at most once per delay costs far less
// than one moved twice per round trip. Moving it later would not save the early wake-up either: the Go runtime
// still wakes at the time a timer was set to before it was moved later (a sender that did so on every
// acknowledgement woke its process as often as this one).
func (q *timerQueue) arm() {
	if q.stopped || q.firing || len(q.h) == 0 {
		return
	}
	if next := q.h[0].timerAt; q.armedAt.IsZero() || next.Before(q.armedAt) {
		q.armedAt = next
		q.t.Reset(time.Until(next))
	}
}

// fire runs the timers of every connection whose deadline passed, until none
// is due, then rearms. Only one runs at a time: one that finds another
// running leaves what is due to it.
func (q *timerQueue) fire() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.armedAt = time.Time{} // t fired: whoever rearms must set it again
	if q.stopped || q.firing {
		return
	}
	q.firing = true
	for {
		now := time.Now()
		for len(q.h) > 0 && !q.h[0].timerAt.After(now) {
			c := heap.Pop(&q.h).(*Conn)
			c.timerAt = time.Time{}
			q.due = append(q.due, c)
		}
		if len(q.due) == 0 {
			break
		}
		q.mu.Unlock()
		for i, c := range q.due {
			c.onTimer(now)
			q.due[i] = nil
		}
		q.mu.Lock()
		q.due = q.due[:0]
	}
	q.firing = false
	q.arm()
	q.ended.Broadcast()
}

// stop stops the timer and waits until no connection's timers run. It must
// not be called from a connection's timers.
func (q *timerQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	q.t.Stop()
	for q.firing {
		q.ended.Wait()
	}
}
