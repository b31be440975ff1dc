package engine

import (
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// RecoveryStats counts how a connection recovered from loss: which
// mechanism found each loss, what proved needless, and the longest time the
// oldest unacknowledged packet waited.
type RecoveryStats struct {
	LostByRACK          int64 // packets declared lost by time-based detection on ACKs
	LostByRTO           int64 // packets declared lost when the retransmission timer fired
	RTOs                int64 // retransmission timeouts
	TailLossProbes      int64
	SpuriousRetransmits int64 // retransmissions found needless: the original arrived
	// LostResends counts resends of the oldest packet found lost by their
	// age, where no acknowledgement could report a packet sent after them.
	LostResends int64
	// LongestStall is the longest time data was outstanding without the
	// cumulative acknowledgement moving.
	LongestStall time.Duration
}

// recoveryCounters are a connection's RecoveryStats, guarded by its lock.
type recoveryCounters struct {
	RecoveryStats
	progressAt time.Time // when the cumulative ACK last moved, or sending began from idle
}

func (r *recoveryCounters) stats() RecoveryStats { return r.RecoveryStats }

// progress notes that the cumulative ACK moved (or that sending began from
// idle) at now, ending any stall.
func (r *recoveryCounters) progress(now time.Time) {
	if !r.progressAt.IsZero() {
		r.LongestStall = max(r.LongestStall, now.Sub(r.progressAt))
	}
	r.progressAt = now
}

// onProgress notes that the cumulative ACK moved at now, past a packet sent
// headXmits times. A stall longer than a few round trips is logged: recovery
// should end one in about one.
func (c *Conn) onProgress(now time.Time, headXmits uint8) {
	if at := c.rec.progressAt; !at.IsZero() && c.rtt.HasSample() && now.Sub(at) > 4*c.rtt.SmoothedRTT() {
		c.ep.cfg.Logger.Debug("utp: long stall", "conn", c.recvID, "stall", now.Sub(at), "sends", headXmits,
			"srtt", c.rtt.SmoothedRTT(), "reordering_window", c.reorderWindow(), "inflight", c.inflight,
			"limbo", c.limbo, "lost_pending", c.lostPending, "cwnd", c.cc.CongestionWindow(), "peer_window", c.peerWnd)
	}
	c.rec.progress(now)
	if c.sent == 0 {
		c.rec.progressAt = time.Time{} // idle: no stall until the next send
	}
}

// onDuplicateReport handles the peer's report that seq arrived twice: if we
// sent it twice, the first copy was late, not lost.
func (c *Conn) onDuplicateReport(seq uint16, now time.Time) {
	if c.forgetRetransmit(seq) {
		c.onSpurious(now)
	}
}

// forgetRetransmit removes seq from the recent retransmissions and reports
// whether it was there, so that one needless resend counts once, however
// many ways it shows.
func (c *Conn) forgetRetransmit(seq uint16) bool {
	for i := range min(c.retxN, len(c.retxSeqs)) {
		if c.retxSeqs[i] == seq {
			c.retxSeqs[i] = c.retxSeqs[(c.retxN-1)%len(c.retxSeqs)]
			c.retxN--
			return true
		}
	}
	return false
}

// reorderState adapts RACK's reordering window to what the path does. The
// window starts at a quarter of the minimum RTT; it widens by a quarter for
// each round trip that showed a needless retransmission, and to a little more
// than the latest arrival seen behind a packet sent after it. It falls back
// after reorderPersist loss recoveries without fresh evidence of either.
type reorderState struct {
	mult    int           // the window in quarters of the minimum RTT
	seen    time.Duration // the latest a packet arrived behind one sent after it
	persist int           // loss recoveries left before mult and seen fall back
	bumpAt  time.Time     // when mult last grew: at most once per round trip
	episode time.Time     // when the current loss recovery began
}

// reorderPersist is how many loss recoveries the reordering window keeps its
// width without fresh evidence of reordering.
const reorderPersist = 16

// onSpurious notes a needless retransmission: the path reorders more than
// the reordering window allows.
func (c *Conn) onSpurious(now time.Time) {
	c.ep.stats.spurious.Add(1)
	c.rec.SpuriousRetransmits++
	r := &c.reo
	if r.bumpAt.IsZero() || now.Sub(r.bumpAt) >= c.rtt.SmoothedRTT() {
		r.mult = min(r.mult+1, 64)
		r.bumpAt = now
	}
	r.persist = reorderPersist
}

// onReordered notes a packet acknowledged late by late behind one sent after
// it.
func (c *Conn) onReordered(late time.Duration) {
	c.reo.seen = max(c.reo.seen, late)
	c.reo.persist = reorderPersist
}

// onLossRecovery notes a packet sent at sentAt declared lost at now: the loss
// of a packet sent after the current recovery began starts a new one.
func (c *Conn) onLossRecovery(sentAt, now time.Time) {
	r := &c.reo
	if !r.episode.IsZero() && !sentAt.After(r.episode) {
		return
	}
	r.episode = now
	if r.persist > 0 {
		if r.persist--; r.persist == 0 {
			r.mult, r.seen = 1, 0
		}
	}
}

// reorderWindow is how late a packet may be, after a later one was
// acknowledged, before it counts as lost; never more than the smoothed RTT.
func (c *Conn) reorderWindow() time.Duration {
	w := time.Duration(c.reo.mult) * max(c.rtt.MinRTT()/4, c.ep.cfg.MinReorderWindow)
	w = max(w, c.reo.seen+c.reo.seen/4)
	return min(w, max(c.rtt.SmoothedRTT(), 16*c.ep.cfg.MinReorderWindow))
}

// detectLoss declares lost every packet in flight (or in limbo) sent a
// reordering window before the most recently sent packet acknowledged (RACK),
// and sets the timer for those not yet late enough. It judges by send time, not by sequence
// number: when the RACK packet is a retransmission, packets after it in the
// queue may well have left before it, and a lost one among them must not wait
// for the timeout.
func (c *Conn) detectLoss(now time.Time) {
	c.rackAt = time.Time{}
	if c.sent == 0 {
		return
	}
	c.detectRACK(now)
	c.detectLostHeadResend(now)
}

// detectLostHeadResend declares lost a resend of the oldest packet that is
// overdue. RACK finds a lost resend only once a packet sent after it is
// reported, and none can be when all of those are past what the peer's
// acknowledgements reach (a window of more packets than a selective ACK
// covers): the cumulative ACK would wait for the retransmission timeout,
// which declares the whole window lost. One more copy of one packet costs
// far less.
func (c *Conn) detectLostHeadResend(now time.Time) {
	s := &c.q[0]
	if s.xmits < 2 || !s.inFlight || c.rack.sentBefore(s) || !c.rtt.HasSample() || c.backoff > 0 {
		return // not a resend, RACK's to judge, or the backed-off timer's
	}
	if now.Before(c.headResendDeadline()) {
		c.armHeadResend()
		return
	}
	c.rec.LostResends++
	c.markLostAt(0, now, c.inflight)
}

// headResendDeadline is when a resend of the oldest packet is overdue.
func (c *Conn) headResendDeadline() time.Time {
	return c.q[0].sentAt.Add(c.rtt.SmoothedRTT() + 4*c.rtt.RTTVar() + c.reorderWindow())
}

// headResendRestarts is how many resends of the oldest packet restart the
// retransmission timer.
const headResendRestarts = 2

// onHeadResent notes that the oldest packet just went out again, its sends
// before this one counted in xmits. The retransmission timer restarts from
// the resend, as Linux's does: counted from the last cumulative ACK, it would
// fire before a resend that was itself lost could be found and sent once more
// (a round trip and a reordering window to find the first loss, as much
// again for the resend's, a round trip for the ACK: more than SRTT + 200 ms
// on a long path), and a timeout declares the whole window lost. Only the
// first resends restart it, so that a path that stopped still meets the
// backed-off timer.
func (c *Conn) onHeadResent(now time.Time, xmits uint8) {
	if c.backoff == 0 && xmits <= headResendRestarts {
		c.rtoBase = now
	}
	c.armHeadResend()
}

// armHeadResend sets the loss detection timer for the resend of the oldest
// packet, just sent.
func (c *Conn) armHeadResend() {
	if !c.rtt.HasSample() || c.backoff > 0 {
		return
	}
	if d := c.headResendDeadline(); c.rackAt.IsZero() || d.Before(c.rackAt) {
		c.rackAt = d
	}
}

// detectRACK is detectLoss's RACK.
func (c *Conn) detectRACK(now time.Time) {
	if c.rack.xmit.IsZero() {
		return
	}
	// Packets from rack.end on were first sent after the RACK packet, and
	// resent ones later still: only those before rack.end can be judged.
	end := int(int16(c.rack.end - c.sndUna))
	if end <= 0 {
		return
	}
	end = min(end, c.sent)
	// Packets from reach on are past what the last acknowledgement could
	// report: late ones go into limbo, not lost.
	reach := int(int16(c.ackReach - c.sndUna))
	reo := c.reorderWindow()
	prior := c.inflight
	for i := 0; i < end; i++ {
		s := &c.q[i]
		if !s.inFlight && !s.limbo || !c.rack.sentBefore(s) {
			continue
		}
		deadline := s.sentAt.Add(c.rack.rtt + reo)
		switch {
		case now.Before(deadline):
			if c.rackAt.IsZero() || deadline.Before(c.rackAt) {
				c.rackAt = deadline
			}
		case i >= reach:
			// Late, but past what the last acknowledgement could report:
			// its silence says nothing. It has left the network, delivered
			// or lost; it stops holding the window against the resends
			// that will move the cumulative ACK up to it, and is judged
			// again once an acknowledgement reaches it.
			if s.inFlight {
				c.inflight -= s.size
				s.inFlight, s.limbo = false, true
				c.limbo++
			}
		default:
			c.onLossRecovery(s.sentAt, now)
			c.rec.LostByRACK++
			c.markLostAt(i, now, prior)
		}
	}
}

// sackReach is how many packets from the oldest unacknowledged one on the
// peer can report: that one by the cumulative ACK, the following ones by the
// longest selective ACK bitmask.
const sackReach = 1 + 8*wire.MaxSACKLen

// reachOf is the first sequence number past what acknowledgement h could
// report. A STATE packet carries as long a selective ACK as the peer needs,
// up to the longest there is; a data packet only what room its payload left,
// so a shorter bitmask there may be cut short, not complete.
func reachOf(h *wire.Header) uint16 {
	if h.Type == wire.State {
		return h.AckNr + 1 + sackReach
	}
	return h.AckNr + 2 + uint16(8*len(h.SACK))
}

// sentBefore reports whether s was last sent before the RACK packet.
func (r *rackState) sentBefore(s *segment) bool {
	return s.sentAt.Before(r.xmit) || s.sentAt.Equal(r.xmit) && wire.SeqLess(s.seq, r.seq)
}

// markLost declares q[i] lost, without telling the controller: after a
// timeout it hears of the timeout as such.
func (c *Conn) markLost(i int) {
	s := &c.q[i]
	if s.inFlight {
		c.inflight -= s.size
	}
	if s.limbo {
		c.limbo--
	}
	s.inFlight, s.limbo, s.lost = false, false, true
	c.lostPending++
	c.lostHint = min(c.lostHint, i)
	c.ep.stats.lost.Add(1)
}

// markLostAt declares q[i] lost at now, with prior bytes in flight
// before this acknowledgement, and tells the controller.
func (c *Conn) markLostAt(i int, now time.Time, prior int) {
	s := &c.q[i]
	c.markLost(i)
	if s.probe {
		c.mtu.probeLost(s.seq, now)
		return // a lost probe says the path MTU is smaller, not that the path is congested
	}
	c.cc.OnLoss(now, s.sentAt, s.size, prior)
}

// pto is the tail loss probe timeout.
func (c *Conn) pto() time.Duration {
	d := 2 * c.rtt.SmoothedRTT()
	if c.inflight <= c.mtu.cur {
		d += c.ep.cfg.PeerAckDelay
	}
	return max(d, 2*c.ep.cfg.MinReorderWindow)
}

// onRTO handles the retransmission timer: the oldest packet and every other
// one in flight or in limbo within the reach of the peer's acknowledgements is
// lost (those past it go into limbo), the timer backs off, and the oldest
// packet goes out at once.
func (c *Conn) onRTO(now time.Time) {
	c.ep.stats.rtos.Add(1)
	c.rec.RTOs++
	c.backoff++
	c.ep.cfg.Logger.Debug("utp: retransmission timeout", "conn", c.recvID, "backoff", c.backoff,
		"rto", c.rto(), "inflight", c.inflight, "outstanding", c.sent, "limbo", c.limbo,
		"head_sends", c.q[0].xmits, "head_age", now.Sub(c.q[0].sentAt), "since_progress", now.Sub(c.rec.progressAt),
		"srtt", c.rtt.SmoothedRTT(), "rttvar", c.rtt.RTTVar(), "cwnd", c.cc.CongestionWindow())
	if c.peerWnd >= c.mtu.cur {
		// With the peer's window closed, what timed out was a probe of the
		// window, which the peer drops by design: flow control, not
		// congestion.
		c.cc.OnRetransmissionTimeout(now)
	}
	probeLost := false
	reach := int(int16(c.ackReach - c.sndUna))
	for i := 0; i < c.sent; i++ {
		s := &c.q[i]
		switch {
		case i > 0 && i >= reach:
			// Past what any acknowledgement could report: delivered or
			// lost, unknown. RACK judges it once the resends move the
			// cumulative ACK up to it; declared lost, a window of more
			// packets than a selective ACK covers would all go again.
			if s.inFlight {
				c.inflight -= s.size
				s.inFlight, s.limbo = false, true
				c.limbo++
			}
		case s.inFlight || s.limbo:
			probeLost = probeLost || s.probe
			c.markLost(i)
			c.rec.LostByRTO++
		}
	}
	if probeLost {
		c.mtu.probeLost(c.mtu.probeSeq, now)
	}
	c.rtoBase = now
	c.forceSend = 1
	c.tlpSent = false
}

// onTLP sends a tail loss probe: new data if the windows allow, else the last
// packet sent again, so that a lost tail is found by an ACK, not a timeout.
func (c *Conn) onTLP(now time.Time) {
	c.ep.stats.tlps.Add(1)
	c.rec.TailLossProbes++
	c.tlpSent = true
	if c.sent < len(c.q) && c.inflight+c.mtu.cur <= c.peerWnd {
		c.forceSend = 1
		return
	}
	for i := c.sent - 1; i >= 0; i-- {
		if c.q[i].inFlight {
			c.transmit(i, now, 0)
			return
		}
	}
}
