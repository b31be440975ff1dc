// Package engine is a uTP (BEP 29) engine: reliable, ordered, flow- and
// congestion-controlled byte streams over the datagrams of one peer.
//
// An Endpoint serves one peer. It sends through a Link, which knows the route
// to the peer, and is handed each datagram the peer sent through
// DeliverDatagram, or a burst of them through DeliverDatagrams (one answer per
// burst instead of per datagram); it never sees an address. A Link that can read the network in the
// goroutine waiting for it (ReadingLink) lets a Read that has to wait do so. Connections are opened from
// either side with Dial and Accept and are net.Conns.
//
// Loss recovery uses selective ACKs, time-based loss detection (RACK) with a
// tail loss probe, and a retransmission timeout per RFC 6298 with Karn's rule
// and exponential backoff. RACK's reordering window adapts to the reordering
// the path shows, so reordering is not taken for loss; Conn.Stats reports
// how a connection recovered (RecoveryStats). A connection never gives up on a timer: it fails
// when the peer resets it, when it is closed, or when the path is declared dead
// with Endpoint.Fail. Path MTU discovery probes upward from a size every path
// carries with padded data packets.
//
// Limits: uTP numbers packets, not bytes, so a packet once sent can never be
// split. If the path's MTU shrinks below the size discovery reached (say, a
// move to a relay with more overhead), packets already queued at the larger
// size cannot get through; the path should keep such a route's DatagramSizes
// at least as large, or fail the endpoint. DatagramSizes is read when a
// connection opens.
//
// Locking: Endpoint.mu guards the connection table; each Conn has its own mu;
// one timer per Endpoint runs all timers. Lock order: Conn.mu, then
// Endpoint.mu, then the timer queue's mu.
package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// Link carries the engine's datagrams to and from one peer. It knows the route; the engine never sees an address.
type Link interface {
	// WriteDatagrams sends datagrams to the peer in order. It must not keep the slices after it returns.
	WriteDatagrams(bufs [][]byte) error
	// DatagramSizes reports the datagram sizes the engine may use: safe is carried by every path (a 1,200-byte UDP
	// payload less the link's own overhead); max is the most the link could carry (local MTU less overheads).
	// The engine probes between them.
	DatagramSizes() (safe, max int)
}

// A ReadingLink is a Link that can read the network in the goroutine waiting for it. Conn.Read, about to wait with
// nothing to read, lets the link read and deliver datagrams in its own goroutine until its data came: the data then
// reaches the reader with no goroutine woken in between, where a hand-off from another goroutine that reads the
// network wakes the reader's thread, which costs more than the round trip of a small request on a fast path.
type ReadingLink interface {
	Link
	// ReadUntil reads datagrams from the network and delivers them (to any connection, through DeliverDatagram or
	// DeliverDatagrams) in the calling goroutine until w.Woken reports true, which it asks before every read. It
	// returns true then, and false when the link needs the goroutine no more, or at once when it cannot read in the
	// caller now (another goroutine does): the caller then waits as it would without a ReadingLink. Whatever ends
	// the wait (data, a deadline, a close) wakes w and calls Interrupt.
	ReadUntil(w Waiter) bool
	// Interrupt makes a ReadUntil in progress ask its Waiter again soon. It may be called from any goroutine, also
	// with a connection's lock held, and must not block.
	Interrupt()
	// WriteWaits tells the link that a Write waits for room in its send buffer: the acknowledgements that make room
	// must be read soon even when no Read waits in ReadUntil. It must not block.
	WriteWaits()
}

// A Waiter is a goroutine waiting in ReadingLink.ReadUntil.
type Waiter interface {
	// Woken reports whether the waiter was woken since it last asked (and takes the wake).
	Woken() bool
}

// Endpoint runs the uTP connections with one peer.
type Endpoint struct {
	link   Link
	rlink  ReadingLink // link, when it is one; else nil
	cfg    Config
	start  time.Time // the zero of the wire's microsecond timestamps
	timers *timerQueue
	accept chan *Conn
	done   chan struct{} // closed by Close or Fail

	mu     sync.Mutex
	conns  map[uint16]*Conn // by the ID the peer sends to
	nextID uint16           // the receive ID the next Dial tries; even
	err    error            // why the endpoint stopped

	stats endpointCounters
}

type endpointCounters struct {
	packetsSent, packetsReceived, bytesSent, bytesReceived atomic.Int64
	retransmits, lost, rtos, tlps, spurious                atomic.Int64
	malformed, unknownConn, refused, writeErrors           atomic.Int64
	dialled, accepted                                      atomic.Int64
	writerWakeups, pacerWakeups                            atomic.Int64
}

// Stats counts what an endpoint did, over all its connections.
type Stats struct {
	Conns                           int   // connections in the table now (open, closing or in time-wait)
	Dialled, Accepted               int64 // connections opened by Dial and by the peer
	PacketsSent, PacketsReceived    int64 // datagrams
	BytesSent, BytesReceived        int64 // datagram bytes
	Retransmits                     int64 // packets sent again (loss, RTO or probe)
	Lost                            int64 // packets declared lost
	RTOs, TailLossProbes            int64
	SpuriousRetransmits             int64 // retransmissions found needless
	Malformed, UnknownConn, Refused int64 // datagrams dropped; SYNs refused
	WriteErrors                     int64 // Link.WriteDatagrams failures
	WriterWakeups                   int64 // acknowledgements that woke a Write waiting for room
	PacerWakeups                    int64 // timer wake-ups that found a connection's pacing wait over
}

// NewEndpoint returns an Endpoint sending through link. Its connections'
// timers run on one timer, which Close or Fail stops; on Linux, a goroutine
// waits on it until then.
func NewEndpoint(link Link, cfg Config) *Endpoint {
	ep := &Endpoint{
		link:   link,
		cfg:    cfg.withDefaults(),
		start:  time.Now(),
		timers: newTimerQueue(),
		done:   make(chan struct{}),
		conns:  make(map[uint16]*Conn),
	}
	ep.rlink, _ = link.(ReadingLink)
	ep.nextID = uint16(rand.N(1<<15)) * 2
	ep.accept = make(chan *Conn, ep.cfg.AcceptBacklog)
	return ep
}

// micros is now on the wire's clock.
func (ep *Endpoint) micros(now time.Time) uint32 {
	return uint32(now.Sub(ep.start) / time.Microsecond)
}

// DeliverDatagram processes one datagram from the peer. It does not keep b.
// It may be called from any goroutine, but never from within the Link's
// WriteDatagrams: the engine writes while holding a connection's lock. It
// also runs any connection's timers that came due and have not run yet.
func (ep *Endpoint) DeliverDatagram(b []byte) {
	now := time.Now() // before any lock, so waiting is not read as path delay
	ep.finishRun(ep.deliver(b, now, nil), now)
	ep.timers.runDue(now)
}

// DeliverDatagrams processes datagrams from the peer in order, as
// DeliverDatagram does each, but a connection answers (its acknowledgement,
// and the packets the acknowledgements it got let it send) once after a run
// of its datagrams rather than after each: a burst read from the socket at
// once costs one ACK and one batched write, not one per datagram. It keeps
// none of bufs, and may be called as DeliverDatagram may.
func (ep *Endpoint) DeliverDatagrams(bufs [][]byte) {
	now := time.Now()
	var cur *Conn
	for _, b := range bufs {
		cur = ep.deliver(b, now, cur)
	}
	ep.finishRun(cur, now)
	ep.timers.runDue(now)
}

// deliver processes one datagram. cur, when not nil, is the connection of
// the run of datagrams before this one, still locked and not yet flushed;
// deliver returns the connection this datagram went to, locked, or nil (cur
// then finished).
func (ep *Endpoint) deliver(b []byte, now time.Time, cur *Conn) *Conn {
	var h wire.Header
	payload, err := h.Decode(b)
	if err != nil {
		ep.stats.malformed.Add(1)
		return cur
	}
	ep.stats.packetsReceived.Add(1)
	ep.stats.bytesReceived.Add(int64(len(b)))
	if h.Type == wire.Syn {
		ep.finishRun(cur, now)
		ep.handleSyn(&h, now)
		return nil
	}
	// A connection in the table is not dead, and one not dead is in the
	// table: the run's connection needs no lookup.
	if cur == nil || cur.recvID != h.ConnID || cur.state == stateDead {
		ep.finishRun(cur, now)
		ep.mu.Lock()
		cur = ep.conns[h.ConnID]
		ep.mu.Unlock()
		if cur == nil {
			ep.stats.unknownConn.Add(1)
			if h.Type != wire.Reset {
				// Our IDs pair as (even receive, odd send) for connections we
				// dial and the other way round for those we accept, so the
				// peer's receive ID is the other member of the pair.
				ep.sendReset(h.ConnID^1, h.SeqNr)
			}
			return nil
		}
		cur.mu.Lock()
	}
	cur.onPacket(&h, payload, now)
	return cur
}

// finishRun answers the datagrams c just processed, unlocks it, and then
// wakes a Read or Write they unblocked: once per run, and after the unlock so
// the woken goroutine does not wait for the lock. A Write waits until the
// acknowledgements made room worth its wake-up (writerShouldWake).
func (ep *Endpoint) finishRun(c *Conn, now time.Time) {
	if c == nil {
		return
	}
	c.flush(now)
	c.maybeDone(now)
	wakeR, wakeW := c.wakeR, c.wakeW && c.writerShouldWake()
	c.wakeR, c.wakeW = false, false
	c.mu.Unlock()
	if wakeR {
		c.wakeReader()
	}
	if wakeW {
		c.ep.stats.writerWakeups.Add(1)
		c.wakeWriter()
	}
}

// handleSyn answers a SYN: a new connection for Accept, the SYN-ACK again for
// a duplicate, or a RESET when the backlog is full or the ID taken.
func (ep *Endpoint) handleSyn(h *wire.Header, now time.Time) {
	recvID := h.ConnID + 1
	ep.mu.Lock()
	if ep.err != nil {
		ep.mu.Unlock()
		return
	}
	if c := ep.conns[recvID]; c != nil {
		ep.mu.Unlock()
		c.mu.Lock()
		dup := c.accepted && c.sendID == h.ConnID && c.peerISN == h.SeqNr
		switch {
		case dup:
			c.sendSynAck(now)
		case c.state == stateTimeWait:
			// The peer reuses the ID of a finished connection: the new one
			// takes its place.
			c.finish()
		}
		replaced := c.state == stateDead
		c.mu.Unlock()
		if dup {
			return
		}
		if !replaced {
			ep.stats.refused.Add(1)
			ep.sendReset(h.ConnID, h.SeqNr)
			return
		}
	} else {
		ep.mu.Unlock()
	}

	c := newConn(ep, recvID, h.ConnID)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acceptSyn(h, now)
	ep.mu.Lock()
	if ep.err != nil || ep.conns[recvID] != nil {
		ep.mu.Unlock()
		return
	}
	select {
	case ep.accept <- c:
		ep.conns[recvID] = c
	default:
		ep.mu.Unlock()
		ep.stats.refused.Add(1)
		c.release()
		ep.sendReset(h.ConnID, h.SeqNr)
		return
	}
	ep.mu.Unlock()
	ep.stats.accepted.Add(1)
	c.sendSynAck(now)
}

// Dial opens a connection to the peer. It returns once the peer acknowledged
// the SYN; ctx bounds the wait (the SYN is retried with backoff until then).
func (ep *Endpoint) Dial(ctx context.Context) (*Conn, error) {
	ep.mu.Lock()
	if ep.err != nil {
		err := ep.err
		ep.mu.Unlock()
		return nil, err
	}
	// Dialled connections receive on even IDs and send on odd ones; accepted
	// connections receive on odd (the peer's even ID plus one). So both sides
	// may dial at once and IDs never collide.
	// IDs are taken in turn, so one comes back only after all the others:
	// the peer has long forgotten its last use.
	var recvID uint16
	found := false
	for range 1 << 15 {
		recvID = ep.nextID
		ep.nextID += 2
		if ep.conns[recvID] == nil {
			found = true
			break
		}
	}
	if !found {
		ep.mu.Unlock()
		return nil, ErrTooManyConns
	}
	c := newConn(ep, recvID, recvID+1)
	estab := make(chan struct{})
	c.estab = estab
	ep.conns[recvID] = c
	ep.mu.Unlock()
	ep.stats.dialled.Add(1)

	c.mu.Lock()
	c.startDial(time.Now())
	c.mu.Unlock()
	select {
	case <-estab:
		c.mu.Lock()
		err := c.err
		c.estab = nil // closed and no longer waited on: an open connection keeps no channel for it
		c.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("utp: dial: %w", err)
		}
		return c, nil
	case <-ctx.Done():
		c.mu.Lock()
		c.abort(fmt.Errorf("utp: dial: %w", ctx.Err()), true)
		c.mu.Unlock()
		return nil, fmt.Errorf("utp: dial: %w", ctx.Err())
	}
}

// Accept waits for a connection the peer opened.
func (ep *Endpoint) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-ep.accept:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("utp: accept: %w", ctx.Err())
	case <-ep.done:
		// Connections that arrived before the end are failed already.
		ep.mu.Lock()
		defer ep.mu.Unlock()
		return nil, ep.err
	}
}

// Fail declares the path dead: every connection fails with an error wrapping
// err (and ErrPathFailed), and Dial and Accept return it from now on. Nothing
// is sent.
func (ep *Endpoint) Fail(err error) {
	ep.stop(fmt.Errorf("%w: %w", ErrPathFailed, err), false)
}

// Close resets every connection (the peer's fail with ErrReset, ours with
// ErrClosed), stops the timers and makes Dial and Accept fail. It
// always returns nil.
func (ep *Endpoint) Close() error {
	ep.stop(ErrClosed, true)
	return nil
}

func (ep *Endpoint) stop(err error, reset bool) {
	ep.mu.Lock()
	if ep.err != nil {
		ep.mu.Unlock()
		return
	}
	ep.err = err
	close(ep.done)
	conns := make([]*Conn, 0, len(ep.conns))
	for _, c := range ep.conns {
		conns = append(conns, c)
	}
	ep.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		c.abort(err, reset)
		c.mu.Unlock()
	}
	ep.timers.stop()
	// Connections still queued for Accept were failed above; drop them.
	for {
		select {
		case <-ep.accept:
		default:
			return
		}
	}
}

// remove drops c from the table. Called with c.mu held.
func (ep *Endpoint) remove(c *Conn) {
	ep.mu.Lock()
	if ep.conns[c.recvID] == c {
		delete(ep.conns, c.recvID)
	}
	ep.mu.Unlock()
	ep.timers.schedule(c, time.Time{})
}

// sendReset sends a RESET to the peer's connection connID.
func (ep *Endpoint) sendReset(connID, ackNr uint16) {
	h := wire.Header{Type: wire.Reset, ConnID: connID, Timestamp: ep.micros(time.Now()), AckNr: ackNr,
		SeqNr: uint16(rand.Uint32())}
	var arr [wire.HeaderLen]byte
	ep.write([][]byte{h.Append(arr[:0])})
}

// write hands datagrams to the link and counts them.
func (ep *Endpoint) write(bufs [][]byte) {
	if len(bufs) == 0 {
		return
	}
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if err := ep.link.WriteDatagrams(bufs); err != nil {
		// The packets count as lost: loss recovery resends them, and the path
		// declares itself dead through Fail if it is.
		ep.stats.writeErrors.Add(1)
		return
	}
	ep.stats.packetsSent.Add(int64(len(bufs)))
	ep.stats.bytesSent.Add(int64(n))
}

// Stats returns the endpoint's counters.
func (ep *Endpoint) Stats() Stats {
	ep.mu.Lock()
	n := len(ep.conns)
	ep.mu.Unlock()
	s := &ep.stats
	return Stats{
		Conns: n, Dialled: s.dialled.Load(), Accepted: s.accepted.Load(),
		PacketsSent: s.packetsSent.Load(), PacketsReceived: s.packetsReceived.Load(),
		BytesSent: s.bytesSent.Load(), BytesReceived: s.bytesReceived.Load(),
		Retransmits: s.retransmits.Load(), Lost: s.lost.Load(), RTOs: s.rtos.Load(), TailLossProbes: s.tlps.Load(),
		SpuriousRetransmits: s.spurious.Load(), Malformed: s.malformed.Load(), UnknownConn: s.unknownConn.Load(),
		Refused: s.refused.Load(), WriteErrors: s.writeErrors.Load(), WriterWakeups: s.writerWakeups.Load(),
		PacerWakeups: s.pacerWakeups.Load(),
	}
}

// WaitClosed waits until every connection closed for writing (CloseWrite or
// Close) has had all its data and its FIN acknowledged, or has failed; ctx
// bounds the wait. Close and CloseWrite return at once and deliver in the
// background: a caller about to close the path (Fail or Close end everything
// at once) waits here first so that what was written before is not lost.
func (ep *Endpoint) WaitClosed(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for ep.closing() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ep.done:
			return nil
		case <-tick.C:
		}
	}
	return nil
}

// closing reports whether a connection closed for writing still waits for its
// data or FIN to be acknowledged.
func (ep *Endpoint) closing() bool {
	return ep.anyConn(func(c *Conn) bool { return c.state == stateOpen && c.writeClosed && !c.finAcked })
}

// InFlight reports whether a connection has packets in flight: it waits for the peer to acknowledge them.
func (ep *Endpoint) InFlight() bool {
	return ep.anyConn(func(c *Conn) bool { return c.inflight > 0 })
}

// anyConn reports whether f, called with the connection's lock held, is true of a connection in the table.
func (ep *Endpoint) anyConn(f func(c *Conn) bool) bool {
	ep.mu.Lock()
	conns := make([]*Conn, 0, len(ep.conns))
	for _, c := range ep.conns {
		conns = append(conns, c)
	}
	ep.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		yes := f(c)
		c.mu.Unlock()
		if yes {
			return true
		}
	}
	return false
}
