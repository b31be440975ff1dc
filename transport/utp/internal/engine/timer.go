package engine

import (
	"container/heap"
	"sync"
	"time"
)

// timerQueue runs every connection's timers of one endpoint: each connection
// has a single next deadline (the earliest of its retransmission, probe,
// pacing, delayed-ACK and close timers) in a heap, and one wakeTimer fires at
// the earliest of them and runs the due connections' timers. So an endpoint
// costs one timer, and at most one goroutine, however many connections it
// has.
//
// Lock order: Conn.mu, then timerQueue.mu. onTimer runs with no lock held.
type timerQueue struct {
	mu      sync.Mutex
	h       timerHeap
	t       wakeTimer // fires fire at armedAt
	armedAt time.Time // zero: t is not set to fire
	movedAt time.Time // when arm last moved t later
	firing  bool      // fire is running the due connections; it rearms t when it ends
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
	q.t = newWakeTimer(q.fire)
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

// laterMoveEvery is how often, at most, the queue moves its timer later: each
// move is a system call, and at hundreds of megabytes a second the earliest
// deadline moves later on every packet. A deadline left in place fires and
// finds nothing due, which costs more than a move but less than a thousand
// of them.
const laterMoveEvery = time.Millisecond

// arm makes the timer fire by the earliest deadline. Called with q.mu held.
//
// Every send and every received packet moves some deadline, most often later
// (an acknowledgement ends a pacing wait or stops the retransmission timer,
// a sent packet carries the delayed acknowledgement), and a deadline the
// timer comes to costs a wake-up of the process. An exact timer follows the
// earliest deadline later too (at most once per laterMoveEvery), so it wakes
// the process mostly when a deadline is due. A runtime timer is moved only
// earlier: it wakes the process at the first deadline it was set to even if
// moved later, so a later one would buy nothing. A timer that fires early
// and finds nothing due is set again then.
func (q *timerQueue) arm() {
	if q.stopped || q.firing {
		return
	}
	var next time.Time // zero: no deadline
	if len(q.h) > 0 {
		next = q.h[0].timerAt
	}
	if next.Equal(q.armedAt) {
		return
	}
	now := time.Now()
	if later := !q.armedAt.IsZero() && (next.IsZero() || next.After(q.armedAt)); later {
		if !q.t.exact() || now.Sub(q.movedAt) < laterMoveEvery {
			return
		}
		q.movedAt = now
	}
	q.armedAt = next
	if next.IsZero() {
		q.t.stop()
		return
	}
	q.t.set(next.Sub(now))
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

// runDue runs the timers due by now if the timer has not yet. An exact
// timer wakes the process through the Go runtime's network poller, which a
// process busy with other goroutines polls only every 10 ms or so (the
// runtime's own timers it checks between goroutines); a busy process
// delivers datagrams all the time, and so runs its timers on time.
func (q *timerQueue) runDue(now time.Time) {
	q.mu.Lock()
	due := !q.firing && !q.armedAt.IsZero() && !now.Before(q.armedAt)
	q.mu.Unlock()
	if due {
		q.fire()
	}
}

// stop stops the timer and waits until no connection's timers run. It must
// not be called from a connection's timers.
func (q *timerQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	for q.firing {
		q.ended.Wait()
	}
	q.mu.Unlock()
	q.t.close() // without q.mu: the timer's goroutine may be waiting for it in fire
}
