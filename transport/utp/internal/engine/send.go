package engine

import (
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/congestion"
	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// maxQueue bounds the send queue in packets, well inside half the 16-bit
// sequence space so sequence comparisons stay unambiguous.
const maxQueue = 16384

// sackReserve is the room a data packet keeps for a selective ACK.
const sackReserve = 2 + 8

// payloadCap is the payload a new data packet carries at the current size.
func (c *Conn) payloadCap() int { return c.mtu.cur - wire.HeaderLen - sackReserve }

// sendRoom is how many more bytes Write may queue: what is unsent stays under
// the congestion window (or MinSendBuffer), everything under MaxWindow.
func (c *Conn) sendRoom() int {
	if c.state != stateOpen || len(c.q) >= maxQueue {
		return 0
	}
	limit := max(c.cc.CongestionWindow(), c.ep.cfg.MinSendBuffer)
	return min(limit-c.unsent, c.ep.cfg.MaxWindow-c.queued)
}

// writerWakeFraction is the share of the send buffer that must be free before
// an acknowledgement wakes a waiting Write. Waking it for every acknowledged
// packet costs a goroutine hand-off, often a thread wake-up, per ACK, each
// to queue a packet or two; once woken it refills the buffer while the three
// quarters still queued keep the connection sending.
const writerWakeFraction = 4

// writerShouldWake reports whether an acknowledgement made enough room to
// wake a waiting Write: a quarter of the send buffer, or any room once less
// than a quarter is left unsent (the window or MaxWindow, not the buffer,
// then holds the writer back, and the connection runs dry without it).
func (c *Conn) writerShouldWake() bool {
	if c.state != stateOpen {
		return true // the writer learns how the connection ended
	}
	room := c.sendRoom()
	if room <= 0 {
		return false
	}
	quarter := min(max(c.cc.CongestionWindow(), c.ep.cfg.MinSendBuffer), c.ep.cfg.MaxWindow) / writerWakeFraction
	return room >= quarter || c.unsent < quarter
}

// enqueue packetizes p, filling the last unsent packet first, and returns how
// much it took.
func (c *Conn) enqueue(p []byte) int {
	n := 0
	pcap := c.payloadCap()
	for n < len(p) && len(c.q) < maxQueue {
		if last := len(c.q) - 1; last >= c.sent && c.q[last].typ == wire.Data {
			s := &c.q[last]
			b := *s.buf
			if room := cap(b) - len(b); room > 0 && len(b) < pcap {
				k := copy(b[len(b):min(cap(b), pcap)], p[n:])
				*s.buf = b[:len(b)+k]
				n += k
				c.queued += k
				c.unsent += k
				continue
			}
		}
		buf := getBuf(pcap)
		k := copy(*buf, p[n:])
		*buf = (*buf)[:k]
		c.pushSegment(segment{typ: wire.Data, seq: c.sndNxt, buf: buf})
		c.sndNxt++
		c.queued += k
		c.unsent += k
		n += k
	}
	return n
}

// pushSegment appends s to the send queue. Acknowledgements slide q forward
// through its array; when q reaches the end, what is left moves back to the
// start if that frees at least half the array, and only otherwise does the
// array grow. Appending to q alone would reallocate and copy the whole queue
// every few acknowledged packets.
func (c *Conn) pushSegment(s segment) {
	if n := len(c.q); n == cap(c.q) {
		if n > 0 && len(c.qArr) >= 2*n {
			copy(c.qArr, c.q)
			clear(c.qArr[n:]) // drop the stale copies' buffers
			c.q = c.qArr[:n]
		} else {
			arr := make([]segment, max(2*n, 2)) // small at first: most connections carry little
			copy(arr, c.q)
			c.qArr, c.q = arr, arr[:n]
		}
	}
	c.q = append(c.q, s)
}

// nextSegment picks what to send next: the oldest lost packet, else the first
// unsent one. It returns -1 when there is nothing.
func (c *Conn) nextSegment() int {
	if c.lostPending > 0 {
		for i := max(c.lostHint, 0); i < c.sent; i++ {
			if c.q[i].lost {
				c.lostHint = i
				return i
			}
		}
		c.lostPending = 0 // cannot happen; keeps a miscount from looping
	}
	if c.sent < len(c.q) && c.state != stateSynSent {
		return c.sent
	}
	if c.sent == 0 && len(c.q) > 0 && c.q[0].typ == wire.Syn {
		return 0
	}
	return -1
}

// flush sends what the windows and the pacer allow, and an acknowledgement
// if one is due and no packet carried it, then rearms the timers.
func (c *Conn) flush(now time.Time) {
	if c.state == stateDead || c.state == stateTimeWait {
		if c.ackNow && c.state == stateTimeWait {
			c.appendPacket(now, wire.State, c.sndNxt, c.rcvNxt-1, nil, 0, true)
			c.writeBatch()
		}
		c.ackNow = false
		return
	}
	for {
		i := c.nextSegment()
		if i < 0 {
			c.markAppLimited()
			break
		}
		s := &c.q[i]
		hdr := wire.HeaderLen
		size := hdr + len(s.payload())
		probe := 0
		if !s.lost && i == c.sent && s.typ == wire.Data && c.mtu.wantProbe(now) {
			if pad := c.mtu.probeSize - size; pad >= 2 {
				probe, size = pad, c.mtu.probeSize
			}
		}
		if c.forceSend == 0 {
			if c.inflight+size > c.cc.CongestionWindow() && c.inflight > 0 {
				break
			}
			if !s.lost && s.typ != wire.Syn && c.inflight+size > c.peerWnd {
				if c.inflight == 0 && c.persistAt.IsZero() {
					c.persistAt = now.Add(c.rto())
				}
				break
			}
			leeway := c.ackClockLeeway()
			if d := c.cc.PacingDelay(now, size, leeway); d > 0 {
				c.paceAt = now.Add(d + leeway)
				break
			}
		} else {
			c.forceSend--
		}
		c.transmit(i, now, probe)
	}
	// A packet sent above carried the acknowledgement and cleared these.
	if c.ackNow || c.ackPending > 0 && !c.ackAt.IsZero() && !now.Before(c.ackAt) {
		c.appendPacket(now, wire.State, c.sndNxt, c.rcvNxt-1, nil, 0, true)
	}
	c.writeBatch()
	c.rearm(now)
}

// ackClockPackets is the least a connection has in flight for the pacer to
// leave its waits to the acknowledgements: the peer acknowledges every other
// packet at once, so at least two are on their way.
const ackClockPackets = 4

// ackClockMisses is how many acknowledgements in a row must fail to come, on
// the interval the flight predicts, before the pacer's timer wakes a sender
// that left its wait to them.
const ackClockMisses = 4

// maxAckClockWait caps how long past its time the pacer waits for an
// acknowledgement to send what it earned: no longer than the pacer's burst
// catches up.
const maxAckClockWait = congestion.MaxPacingCatchUp

// ackClockLeeway is how long past due the pacer may leave a packet it holds
// back for an acknowledgement to send, or zero for its timer to wake the
// sender on time. Every timer deadline that comes costs the process a thread
// wake-up (two, counting the Go runtime's monitor thread), on a runtime timer
// even one a later deadline replaced (see timerQueue.arm), as does every
// acknowledgement that arrives.
// With packets in flight, acknowledgements keep coming, and each sends what
// the pacer earned by then; so the timer is only a fallback for when they
// stop: a quarter of a round trip, or four of the intervals at which the
// flight predicts them, past due, whichever is longer, up to
// maxAckClockWait. Where four such intervals are longer than that (the first
// round trips of a long path, a slow one), the acknowledgements cannot carry
// the sender, and the timer wakes it on time. The pacer's burst covers the
// leeway: without that, leaving the waits to acknowledgements cost 1-4% of
// the rate at 20 Mbit/s on a busy machine.
func (c *Conn) ackClockLeeway() time.Duration {
	packets := c.inflight / c.mtu.cur
	if packets < ackClockPackets {
		return 0
	}
	rtt := c.rtt.LatestRTT()
	ackEvery := 2 * rtt / time.Duration(packets) // the peer acknowledges every other packet
	misses := ackClockMisses * ackEvery
	if misses > maxAckClockWait {
		return 0 // too few to carry the sender: a round trip's first packets, a slow path
	}
	return min(max(rtt/4, misses), maxAckClockWait)
}

// markAppLimited tells a controller that models the path's delivery rate
// that the sender ran out of data with room in the window: until what is in
// flight now is delivered, its rate samples measure the application, and may
// raise the model's estimate of the path but not lower it. A window, the
// peer's or ours, that held data back is the path's limit, not the
// application's, and is not marked.
func (c *Conn) markAppLimited() {
	if o, ok := c.cc.(congestion.AppLimitedObserver); ok && c.state == stateOpen &&
		c.inflight+c.mtu.cur <= c.cc.CongestionWindow() {
		o.OnAppLimited(c.inflight)
	}
}

// transmit sends q[i], padded by probe bytes when it probes the path MTU.
func (c *Conn) transmit(i int, now time.Time, probe int) {
	s := &c.q[i]
	retx := s.xmits > 0
	if s.lost {
		s.lost = false
		c.lostPending--
	}
	connID := c.sendID
	ackNr := c.rcvNxt - 1
	if s.typ == wire.Syn {
		connID, ackNr = c.recvID, 0
	}
	size := c.appendPacketTo(now, s.typ, connID, s.seq, ackNr, s.payload(), probe, s.typ != wire.Syn)
	if retx {
		c.retransmits++
		c.ep.stats.retransmits.Add(1)
		c.retxSeqs[c.retxN%len(c.retxSeqs)] = s.seq
		c.retxN++
		if s.inFlight {
			c.inflight -= s.size // a probe resends a packet still in flight
		}
	}
	s.probe = probe > 0
	if s.probe {
		c.mtu.probeSent(s.seq)
	}
	s.size = size
	s.sentAt = now
	if retx && i == 0 {
		c.onHeadResent(now, s.xmits)
	}
	s.inFlight = true
	if s.xmits < 255 {
		s.xmits++
	}
	c.cc.OnPacketSent(now, c.inflight, size)
	c.inflight += size
	if i == c.sent {
		c.sent++
		c.unsent -= len(s.payload())
	}
	s.end = c.sndUna + uint16(c.sent)
	if c.rtoBase.IsZero() {
		c.rtoBase = now
	}
	if c.rec.progressAt.IsZero() {
		c.rec.progressAt = now
	}
	c.lastSend = now
	c.persistAt = time.Time{}
	c.paceAt = time.Time{}
}

// appendPacket adds a packet of ours to the batch.
func (c *Conn) appendPacket(now time.Time, t wire.Type, seq, ack uint16, payload []byte, pad int, sack bool) {
	c.appendPacketTo(now, t, c.sendID, seq, ack, payload, pad, sack)
}

// appendPacketTo encodes a packet into a pooled buffer queued on the batch,
// with a selective ACK if there is one and it fits, and returns its size.
// Every packet acknowledges, so a pending ACK is cleared.
func (c *Conn) appendPacketTo(now time.Time, t wire.Type, connID, seq, ack uint16, payload []byte, pad int,
	sack bool) int {
	if len(c.batch) >= c.ep.cfg.MaxBatch {
		c.writeBatch()
	}
	h := wire.Header{Type: t, ConnID: connID, Timestamp: c.ep.micros(now), TimestampDiff: c.replyDiff,
		WndSize: uint32(c.recvWindow()), SeqNr: seq, AckNr: ack, Padding: pad}
	if sack && c.dupPending {
		h.Duplicate, h.HasDuplicate, c.dupPending = c.dupSeq, true, false
	}
	var sackBuf [wire.MaxSACKLen]byte // on the stack: a connection keeps no SACK buffer
	if sack {
		room := c.mtu.cur - h.Len() - len(payload) - 2
		h.SACK = c.buildSACK(sackBuf[:], room)
	}
	n := h.Len() + len(payload)
	buf := getBuf(n)
	b := h.Append((*buf)[:0])
	b = append(b, payload...)
	*buf = b
	c.batch = append(c.batch, b)
	c.batchBufs = append(c.batchBufs, buf)
	c.batchPending++
	c.lastAdv = int(h.WndSize)
	c.ackPending, c.ackNow, c.ackAt = 0, false, time.Time{}
	return n
}

// writeBatch hands the batch to the link. The connection's lock is held: its
// packets leave in order, and no other connection waits on it.
// Once nothing is in flight it drops a large batch array, even with nothing
// to write: the ACK that empties the flight is where a sender goes idle.
func (c *Conn) writeBatch() {
	if len(c.batch) > 0 {
		c.ep.write(c.batch)
		for i, b := range c.batchBufs {
			putBuf(b)
			c.batchBufs[i] = nil
			c.batch[i] = nil
		}
		c.batch, c.batchBufs = c.batch[:0], c.batchBufs[:0]
		c.batchPending = 0
	}
	if cap(c.batch) > 4 && c.inflight == 0 {
		c.batch, c.batchBufs = nil, nil // idle connections keep no batch
	}
}

// rto is the retransmission timeout with backoff. The floor applies to the
// variation term, as in Linux, not to the whole: SRTT + max(4*RTTVAR, MinRTO).
// A floor on the whole would fire on a steady long path (SRTT 160 ms, RTO 200
// ms) before loss detection by ACKs has had its round trip.
func (c *Conn) rto() time.Duration {
	base := c.ep.cfg.InitialRTO
	if c.rtt.HasSample() {
		base = c.rtt.SmoothedRTT() + max(4*c.rtt.RTTVar(), c.ep.cfg.MinRTO)
	} else if hint := c.ep.cfg.RTTHint; hint != nil {
		if r := hint(); r > 0 {
			base = r + max(2*r, c.ep.cfg.MinRTO)
		}
	}
	d := base << min(c.backoff, 16)
	return min(d, c.ep.cfg.MaxRTO)
}

// rearm computes the connection's next deadline.
func (c *Conn) rearm(now time.Time) {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	switch c.state {
	case stateDead:
		return
	case stateTimeWait:
		consider(c.lingerAt)
		c.ep.timers.schedule(c, next)
		return
	}
	if c.inflight > 0 || c.limbo > 0 {
		consider(c.rtoBase.Add(c.rto()))
		if !c.tlpSent && c.rtt.HasSample() && c.backoff == 0 {
			consider(c.lastSend.Add(c.pto()))
		}
	} else {
		c.rtoBase = time.Time{}
	}
	consider(c.rackAt)
	consider(c.persistAt)
	if c.lostPending > 0 || c.sent < len(c.q) {
		consider(c.paceAt)
	}
	if c.ackPending > 0 {
		if c.ackAt.IsZero() {
			c.ackAt = now.Add(c.ep.cfg.AckDelay)
		}
		consider(c.ackAt)
	}
	consider(c.lingerAt)
	c.ep.timers.schedule(c, next)
}

// onTimer runs whatever timers of c are due.
func (c *Conn) onTimer(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case stateDead:
		return
	case stateTimeWait:
		if !now.Before(c.lingerAt) {
			c.finish()
			return
		}
		c.rearm(now)
		return
	}
	if !c.lingerAt.IsZero() && !now.Before(c.lingerAt) {
		c.err = ErrCloseTimeout
		c.abort(ErrCloseTimeout, true)
		return
	}
	if !c.rackAt.IsZero() && !now.Before(c.rackAt) {
		c.rackAt = time.Time{}
		c.detectLoss(now)
	}
	if c.inflight > 0 || c.limbo > 0 {
		if rtoAt := c.rtoBase.Add(c.rto()); !now.Before(rtoAt) {
			c.onRTO(now)
		} else if !c.tlpSent && c.rtt.HasSample() && c.backoff == 0 && !now.Before(c.lastSend.Add(c.pto())) {
			c.onTLP(now)
		}
	}
	if !c.persistAt.IsZero() && !now.Before(c.persistAt) {
		// The peer's window is closed and nothing is in flight: one packet
		// goes out anyway, so a lost window update cannot stall us.
		c.persistAt = time.Time{}
		if c.sent < len(c.q) {
			c.forceSend = 1
			c.backoff++
		}
	}
	if !c.paceAt.IsZero() && !now.Before(c.paceAt) {
		c.paceAt = time.Time{}
		c.ep.stats.pacerWakeups.Add(1)
	}
	c.flush(now)
}
