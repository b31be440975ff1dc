package engine

import (
	"container/heap"
	"sync"
	"time"
)

// timerQueue runs every connection's timers of one endpoint on one goroutine:
// each connection has a single next deadline (the earliest of its
// retransmission, probe, pacing, delayed-ACK and close timers) in a heap.
//
// Lock order: Conn.mu, then timerQueue.mu. The goroutine calls onTimer with no
// lock held.
type timerQueue struct {
	mu   sync.Mutex
	h    timerHeap
	wake chan struct{}
	done chan struct{}
	exit chan struct{}
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
	return &timerQueue{wake: make(chan struct{}, 1), done: make(chan struct{}), exit: make(chan struct{})}
}

// schedule sets c's deadline to at; the zero time removes it.
func (q *timerQueue) schedule(c *Conn, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if at.Equal(c.timerAt) && (c.timerIdx >= 0) == !at.IsZero() {
		return
	}
	first := len(q.h) > 0 && q.h[0] == c
	c.timerAt = at
	switch {
	case at.IsZero():
		if c.timerIdx >= 0 {
			heap.Remove(&q.h, c.timerIdx)
		}
		return
	case c.timerIdx >= 0:
		heap.Fix(&q.h, c.timerIdx)
	default:
		heap.Push(&q.h, c)
	}
	if first || q.h[0] == c {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (q *timerQueue) stop() {
	select {
	case <-q.done:
	default:
		close(q.done)
	}
	<-q.exit
}

func (q *timerQueue) run() {
	defer close(q.exit)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var due []*Conn
	for {
		now := time.Now()
		q.mu.Lock()
		for len(q.h) > 0 && !q.h[0].timerAt.After(now) {
			c := heap.Pop(&q.h).(*Conn)
			c.timerAt = time.Time{}
			due = append(due, c)
		}
		next := time.Hour
		if len(q.h) > 0 {
			next = q.h[0].timerAt.Sub(now)
		}
		q.mu.Unlock()
		for i, c := range due {
			c.onTimer(now)
			due[i] = nil
		}
		due = due[:0]
		t.Reset(next)
		select {
		case <-t.C:
		case <-q.wake:
		case <-q.done:
			return
		}
	}
}
