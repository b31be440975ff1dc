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
		c.onDuplicateReport(h.Duplicate, now)
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
	prevReach := c.ackReach
	deliver := func(s *segment) {
		if s.inFlight {
			c.inflight -= s.size
			s.inFlight = false
		}
		if s.limbo {
			s.limbo = false
			c.limbo--
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
		if s.xmits == 1 && wire.SeqLess(s.seq, prevReach) && c.rack.sentBefore(s) {
			// Delivered behind a packet sent after it: the path reorders.
			// (Past the previous acknowledgement's reach, its report was
			// only late.)
			if late := now.Sub(s.sentAt) - c.rack.rtt; late > 0 {
				c.onReordered(late)
			}
		}
		if s.xmits > 1 && c.rtt.HasSample() && now.Sub(s.sentAt) < c.rtt.MinRTT()/2 {
			// Acknowledged sooner than a round trip after the resend: the
			// original arrived, and the resend was needless.
			c.forgetRetransmit(s.seq) // the peer's duplicate report must not count it again
			c.onSpurious(now)
		} else if s.xmits == 1 || now.Sub(s.sentAt) >= max(c.rtt.MinRTT(), c.rtt.LatestRTT()*3/4) {
			// A resend acknowledged sooner than the path's current round
			// trip after it left (a standing queue makes that longer than the
			// minimum) was most likely the original arriving late: taken as
			// the most recently sent packet delivered, it would make every
			// packet sent before it look lost.
			if s.sentAt.After(c.rack.xmit) || s.sentAt.Equal(c.rack.xmit) && wire.SeqLess(c.rack.seq, s.seq) {
				c.rack = rackState{xmit: s.sentAt, seq: s.seq, rtt: now.Sub(s.sentAt), end: s.end}
			}
		}
		if s.probe {
			c.mtu.probeAcked(s.seq, s.size, now, c)
		}
	}
	var headXmits uint8
	if n > 0 {
		headXmits = c.q[0].xmits
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
		c.onProgress(now, headXmits)
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
	c.ackReach = reachOf(h)
	c.detectLoss(now)
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
	if len(c.ooo) > 0 {
		// It fills a gap: the sender is waiting to learn that it arrived,
		// and a delayed ACK would look like loss to its reordering window.
		c.ackNow = true
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
	if c.ackPending >= c.ep.cfg.AckEvery {
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
