package netem

import (
	"container/heap"
	"net"
	"sync"
	"time"
)

// Packet is one datagram crossing a link. Addr is carried through untouched (a PacketConn uses it for the
// destination or source address; a forwarder may leave it nil).
type Packet struct {
	Data []byte
	Addr net.Addr
}

// Link is one direction of an impaired path. Send never blocks; each packet that survives the impairments is
// passed to the deliver callback at its delivery time, in delivery-time order, on the link's goroutine.
type Link struct {
	deliver func(Packet)

	mu      sync.Mutex
	shaper  *shaper
	pending pendingHeap
	seq     uint64
	wake    chan struct{} // poked when an earlier delivery time is scheduled
	closed  bool
	done    chan struct{}
	stopped chan struct{}
}

// NewLink starts a link that applies im to every packet given to Send and hands the survivors to deliver. seed
// makes the random choices repeatable. deliver must not block for long: it holds up every later packet. Close
// the link to stop its goroutine.
func NewLink(im Impairment, seed uint64, deliver func(Packet)) *Link {
	l := &Link{
		deliver: deliver,
		shaper:  newShaper(im, seed, time.Now()),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go l.run()
	return l
}

// Send offers a packet to the link. The link copies p.Data, so the caller may reuse it.
func (l *Link) Send(p Packet) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	times := l.shaper.admit(len(p.Data), now)
	if len(times) == 0 {
		return
	}
	p.Data = append([]byte(nil), p.Data...)
	earliest := len(l.pending) == 0 || times[0].Before(l.pending[0].at)
	for _, at := range times {
		l.seq++
		heap.Push(&l.pending, pending{at: at, seq: l.seq, pkt: p})
	}
	if earliest {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// Outage drops every packet offered in the next d, starting now.
func (l *Link) Outage(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shaper.manualEnd = later(l.shaper.manualEnd, time.Now().Add(d))
}

// Backlog returns the bytes waiting in the bottleneck queue now.
func (l *Link) Backlog() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.shaper.backlog(time.Now()))
}

// Stats returns what the link has done so far.
func (l *Link) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shaper.stats
}

// Close stops the link. Packets not yet delivered are discarded; Close returns once the callback has returned for
// the last time.
func (l *Link) Close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	l.mu.Unlock()
	<-l.stopped
}

func (l *Link) run() {
	defer close(l.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		now := time.Now()
		var due []Packet
		for len(l.pending) > 0 && !l.pending[0].at.After(now) {
			due = append(due, heap.Pop(&l.pending).(pending).pkt)
		}
		wait := time.Hour
		if len(l.pending) > 0 {
			wait = l.pending[0].at.Sub(now)
		}
		l.mu.Unlock()
		for _, p := range due {
			select {
			case <-l.done:
				return
			default:
			}
			l.deliver(p)
		}
		if len(due) > 0 {
			continue // delivering took time; look again before sleeping
		}
		timer.Reset(wait) // since Go 1.23 Reset discards any stale expiry, so no draining is needed
		select {
		case <-l.done:
			return
		case <-l.wake:
		case <-timer.C:
		}
	}
}

// pending is a packet waiting for its delivery time; seq keeps equal times in send order.
type pending struct {
	at  time.Time
	seq uint64
	pkt Packet
}

type pendingHeap []pending

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}
