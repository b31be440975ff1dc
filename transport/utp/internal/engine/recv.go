package engine

import (
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// maxOutOfOrder bounds how far ahead of the next expected packet one may be
// buffered, in packets.
const maxOutOfOrder = 16384

// recvWindow is the window to advertise: what the receive buffer can still take.
func (c *Conn) recvWindow() int {
	return max(0, c.ep.cfg.ReceiveWindow-c.rqBytes-c.oooBytes)
}

// onPacket processes a packet for this connection (never a SYN). The caller
// flushes afterwards (once for a run of packets): what is due to be sent,
// acknowledgements included, waits for that.
func (c *Conn) onPacket(h *wire.Header, payload []byte, now time.Time) {
	switch c.state {
	case stateDead:
		return
	case stateTimeWait:
		if h.Type == wire.Fin || h.Type == wire.Data {
			c.ackNow = true
			c.flush(now)
		}
		return
	}
	if h.Type == wire.Reset {
		c.abort(ErrReset, false)
		return
	}
	c.replyDiff = c.ep.micros(now) - h.Timestamp
	if c.state == stateSynSent {
		// The SYN is acknowledged by a STATE whose sequence number is the
		// peer's first; a data packet from the peer acknowledges it too.
		if h.AckNr != c.isn || h.Type == wire.Fin {
			return
		}
		c.rcvNxt = h.SeqNr
		c.state = stateOpen
	}
	c.peerWnd = int(h.WndSize)
	if h.HasDuplicate {
		c.onDuplicateReport(h.Duplicate)
	}
	c.onAck(h, now)
	if c.state == stateDead {
		return
	}
	if c.state == stateOpen && !c.estabSet {
		c.setEstablished()
	}
	if h.Type == wire.Data || h.Type == wire.Fin {
		c.onData(h, payload, now)
		if c.state == stateDead {
			return
		}
	}
	if !c.persistAt.IsZero() && c.inflight+c.mtu.cur <= c.peerWnd {
		c.persistAt = time.Time{}
	}
}

// onAck applies the cumulative and selective acknowledgement of h.
func (c *Conn) onAck(h *wire.Header, now time.Time) {
	if c.sent == 0 {
		return
	}
	n := int(h.AckNr - c.sndUna + 1) // packets newly acknowledged cumulatively
	if n > c.sent || n < 0 {
		return // acknowledges what we never sent (or a stale ACK that wrapped): ignore
	}
	prior := c.inflight
	acked := 0
	var sample time.Duration
	var sampleAt time.Time
	deliver := func(s *segment) {
		if s.inFlight {
			c.inflight -= s.size
			s.inFlight = false
		}
		if s.lost {
			s.lost = false
			c.lostPending--
		}
		acked += s.size
		// Karn: never sample a retransmitted packet. Nor one sent before a
		// packet already delivered: its acknowledgement was held back (say,
		// beyond the reach of the selective ACK), not its journey.
		if s.xmits == 1 && s.sentAt.After(c.rack.xmit) && (sampleAt.IsZero() || s.sentAt.After(sampleAt)) {
			sample, sampleAt = now.Sub(s.sentAt), s.sentAt
		}
		if s.xmits > 1 && c.rtt.HasSample() && now.Sub(s.sentAt) < c.rtt.MinRTT()/2 {
			// Acknowledged sooner than a round trip after the resend: the
			// original arrived, and the resend was needless.
			c.onSpurious()
		} else if s.xmits == 1 || now.Sub(s.sentAt) >= c.rtt.MinRTT() {
			if s.sentAt.After(c.rack.xmit) || s.sentAt.Equal(c.rack.xmit) && wire.SeqLess(c.rack.seq, s.seq) {
				c.rack = rackState{xmit: s.sentAt, seq: s.seq, rtt: now.Sub(s.sentAt)}
			}
		}
		if s.probe {
			c.mtu.probeAcked(s.seq, s.size, now, c)
		}
	}
	for i := 0; i < n; i++ {
		s := &c.q[i]
		if !s.sacked {
			deliver(s)
		}
		switch s.typ {
		case wire.Fin:
			c.finAcked = true
		case wire.Data:
			c.queued -= len(s.payload())
		}
		putBuf(s.buf)
		s.buf = nil
	}
	if n > 0 {
		switch {
		case n < len(c.q):
			c.q = c.q[n:]
		case cap(c.q) > 16:
			c.q, c.qArr = nil, nil // an idle connection keeps no large queue
		default:
			c.q = c.q[:0] // reuse the array from where it starts
		}
		c.sent -= n
		c.sndUna += uint16(n)
		c.lostHint = max(c.lostHint-n, 0)
		// New data acknowledged: the retransmission timer restarts without
		// backoff, and the tail may be probed again.
		c.backoff = 0
		c.rtoBase = now
		c.tlpSent = false
		c.wakeW = true
	}
	if h.SACK != nil {
		for i := range len(h.SACK) * 8 {
			if !wire.SACKBit(h.SACK, i) {
				continue
			}
			idx := int(h.AckNr + 2 + uint16(i) - c.sndUna)
			if idx >= c.sent {
				break // beyond what we sent: ignore the rest
			}
			if s := &c.q[idx]; !s.sacked {
				deliver(s)
				s.sacked = true
			}
		}
	}
	if acked > 0 {
		if ts := c.timestampRTT(h, now); ts > 0 {
			sample = ts
		}
	}
	if sample > 0 {
		c.rtt.UpdateRTT(sample, now)
	}
	if acked > 0 {
		c.cc.OnAck(now, acked, prior, &c.rtt, c.queuingDelay(h.TimestampDiff, now))
	}
	c.detectLoss(now)
}

// onDuplicateReport handles the peer's report that seq arrived twice: if we
// sent it twice, the first copy was late, not lost.
func (c *Conn) onDuplicateReport(seq uint16) {
	for i := range min(c.retxN, len(c.retxSeqs)) {
		if c.retxSeqs[i] == seq {
			c.retxSeqs[i] = c.retxSeqs[(c.retxN-1)%len(c.retxSeqs)]
			c.retxN--
			c.onSpurious()
			return
		}
	}
}

// onSpurious notes a needless retransmission: the path reorders more than
// the reordering window allows, so the window doubles, for the next 16 loss
// detections.
func (c *Conn) onSpurious() {
	c.ep.stats.spurious.Add(1)
	c.reoMult = min(c.reoMult*2, 64)
	c.reoDecay = 16
}

// maxTimestampRTT bounds a round trip read from timestamps; more means a
// peer's clock or timestamps are not to be trusted.
const maxTimestampRTT = time.Minute

// timestampRTT is the round trip the timestamps of h give, or 0. The peer's
// timestamp difference is its receive time of our last packet less that
// packet's timestamp; adding our receive time of h less h's timestamp cancels
// the clocks' offset and leaves the round trip less the time the peer held
// the packet before answering. Unlike a send-to-ACK time it is never
// ambiguous after a retransmission, and a late or selective ACK cannot
// stretch it.
func (c *Conn) timestampRTT(h *wire.Header, now time.Time) time.Duration {
	if h.TimestampDiff == 0 || h.Timestamp == 0 {
		return 0
	}
	us := int32(c.ep.micros(now) - h.Timestamp + h.TimestampDiff)
	d := time.Duration(us) * time.Microsecond
	if d <= 0 || d > maxTimestampRTT {
		return 0
	}
	return d
}

// queuingDelay is the one-way delay of BEP 29: the peer's timestamp
// difference less its smallest value of the last two minutes, or -1 when the
// peer sent none.
func (c *Conn) queuingDelay(diff uint32, now time.Time) time.Duration {
	if diff == 0 {
		return -1
	}
	if c.delayBaseAt.IsZero() || now.Sub(c.delayBaseAt) > 2*time.Minute || int32(diff-c.delayBase) < 0 {
		c.delayBase, c.delayBaseAt = diff, now
	}
	return time.Duration(diff-c.delayBase) * time.Microsecond
}

// reorderWindow is how late a packet may be, after a later one was
// acknowledged, before it counts as lost.
func (c *Conn) reorderWindow() time.Duration {
	w := time.Duration(c.reoMult) * max(c.rtt.MinRTT()/4, c.ep.cfg.MinReorderWindow)
	return min(w, max(c.rtt.SmoothedRTT(), 16*c.ep.cfg.MinReorderWindow))
}

// detectLoss declares lost every packet in flight sent a reordering window
// before the most recently sent packet acknowledged (RACK), and sets the timer
// for those not yet late enough.
func (c *Conn) detectLoss(now time.Time) {
	c.rackAt = time.Time{}
	if c.rack.xmit.IsZero() || c.sent == 0 {
		return
	}
	// Packets after the RACK packet in the queue were first sent after it,
	// and resent ones later still: only those before it can be judged.
	limit := int(c.rack.seq - c.sndUna)
	if limit >= c.sent || limit < 0 {
		return
	}
	reo := c.reorderWindow()
	found := false
	prior := c.inflight
	for i := 0; i < limit; i++ {
		s := &c.q[i]
		if !s.inFlight || s.sentAt.After(c.rack.xmit) {
			continue
		}
		deadline := s.sentAt.Add(c.rack.rtt + reo)
		if !now.Before(deadline) {
			found = true
			c.markLostAt(i, now, prior)
		} else if c.rackAt.IsZero() || deadline.Before(c.rackAt) {
			c.rackAt = deadline
		}
	}
	if found && c.reoDecay > 0 {
		if c.reoDecay--; c.reoDecay == 0 {
			c.reoMult = 1
		}
	}
}

// markLost declares q[i] lost; congestion says whether the controller hears
// of it (not after a timeout, which it hears of as such).
func (c *Conn) markLost(i int, now time.Time, congestion bool) {
	prior := c.inflight
	if congestion {
		c.markLostAt(i, now, prior)
		return
	}
	s := &c.q[i]
	c.inflight -= s.size
	s.inFlight, s.lost = false, true
	c.lostPending++
	c.lostHint = min(c.lostHint, i)
	c.ep.stats.lost.Add(1)
}

func (c *Conn) markLostAt(i int, now time.Time, prior int) {
	s := &c.q[i]
	c.markLost(i, now, false)
	if s.probe {
		c.mtu.probeLost(s.seq, now)
		return // a lost probe says the path MTU is smaller, not that the path is congested
	}
	c.cc.OnLoss(now, s.sentAt, s.size, prior)
}

// onData takes in a DATA or FIN packet.
func (c *Conn) onData(h *wire.Header, payload []byte, now time.Time) {
	off := int(h.SeqNr - c.rcvNxt)
	if off >= 1<<15 || (c.finRcvd && wire.SeqLess(c.finSeq, h.SeqNr)) {
		// A duplicate: the peer missed our acknowledgement, or resent a
		// packet that was only late. Tell it which.
		c.ackNow = true
		c.dupSeq, c.dupPending = h.SeqNr, true
		return
	}
	if c.readClosed && len(payload) > 0 {
		c.abort(ErrClosed, true) // nobody will read it: tell the peer, as TCP does
		return
	}
	if off >= maxOutOfOrder || len(payload) > c.recvWindow() {
		c.ackNow = true // beyond our window: the peer will resend it
		return
	}
	if h.Type == wire.Fin {
		if c.finRcvd && c.finSeq != h.SeqNr {
			return
		}
		c.finRcvd, c.finSeq = true, h.SeqNr
	}
	if off > 0 {
		for len(c.ooo) < off {
			c.ooo = append(c.ooo, nil)
		}
		if c.ooo[off-1] == nil {
			c.ooo[off-1] = &slot{buf: c.copyPayload(payload), fin: h.Type == wire.Fin}
			c.oooBytes += len(payload)
		} else {
			c.dupSeq, c.dupPending = h.SeqNr, true
		}
		c.ackNow = true // out of order: the sender needs our SACK now
		return
	}
	c.deliverInOrder(payload, h.Type == wire.Fin)
	for len(c.ooo) > 0 && c.ooo[0] != nil && !c.eof {
		s := c.ooo[0]
		c.ooo[0] = nil
		c.ooo = c.ooo[1:]
		c.oooBytes -= bufLen(s.buf)
		c.deliverInOrderBuf(s.buf, s.fin)
	}
	if len(c.ooo) > 0 && c.ooo[0] == nil {
		c.ooo = c.ooo[1:] // the slot of the packet that just arrived in order
	}
	if len(c.ooo) == 0 {
		c.ooo = nil
	}
	if c.eof {
		c.ackNow = true
		for _, s := range c.ooo {
			if s != nil {
				putBuf(s.buf)
			}
		}
		c.ooo, c.oooBytes = nil, 0
		return
	}
	c.ackPending++
	if c.ackPending >= 2 {
		c.ackNow = true
	}
}

func bufLen(b *[]byte) int {
	if b == nil {
		return 0
	}
	return len(*b)
}

// copyPayload copies p into a pooled buffer (nil for an empty p).
func (c *Conn) copyPayload(p []byte) *[]byte {
	if len(p) == 0 {
		return nil
	}
	b := getBuf(len(p))
	copy(*b, p)
	return b
}

func (c *Conn) deliverInOrder(p []byte, fin bool) {
	c.deliverInOrderBuf(c.copyPayload(p), fin)
}

// deliverInOrderBuf appends the packet at rcvNxt to the read queue.
func (c *Conn) deliverInOrderBuf(b *[]byte, fin bool) {
	c.rcvNxt++
	if b != nil {
		switch last := len(c.rq) - 1; {
		case c.readClosed:
			putBuf(b)
		case last >= 0 && cap(*c.rq[last])-len(*c.rq[last]) >= len(*b):
			// Small packets share a buffer, so memory follows the bytes
			// buffered, not the packet count.
			*c.rq[last] = append(*c.rq[last], *b...)
			c.rqBytes += len(*b)
			putBuf(b)
		default:
			c.rq = append(c.rq, b)
			c.rqBytes += len(*b)
		}
	}
	if fin {
		c.eof = true
	}
	c.wakeR = true
}

// buildSACK encodes which out-of-order packets arrived into buf, in at most
// room bytes of extension payload; nil when none did or none fit.
func (c *Conn) buildSACK(buf []byte, room int) []byte {
	last := -1
	for i := len(c.ooo) - 1; i >= 0; i-- {
		if c.ooo[i] != nil {
			last = i
			break
		}
	}
	if last < 0 {
		return nil
	}
	// ooo[i] is rcvNxt+1+i, which is bit i after ack_nr = rcvNxt-1.
	n := min((last/8+1+3)/4*4, len(buf), room/4*4)
	if n <= 0 {
		return nil
	}
	mask := buf[:n]
	clear(mask)
	for i := 0; i < n*8 && i <= last; i++ {
		if c.ooo[i] != nil {
			wire.SetSACKBit(mask, i)
		}
	}
	return mask
}
