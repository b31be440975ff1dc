package engine

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/transport/utp/internal/congestion"
	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// scriptedPeer plays the receiving peer of an accepted connection by hand: the
// engine's packets land on a recordLink, and the test sends back exactly the
// acknowledgements a scripted pattern of drops and reordering would cause.
type scriptedPeer struct {
	t    *testing.T
	link *recordLink
	ep   *Endpoint
	c    *Conn
}

// noRTO is a retransmission timeout far beyond any test's wait: a packet
// resent in a test was found lost by RACK or a probe, never by the timer,
// unless the test sets Config.MinRTO.
const noRTO = time.Hour

// peerWindow is the window the scripted peer advertises.
const peerWindow = 64 << 20

func newScriptedPeer(t *testing.T, cfg Config) *scriptedPeer {
	t.Helper()
	link := &recordLink{keep: true}
	if cfg.MinRTO == 0 {
		cfg.InitialRTO, cfg.MinRTO, cfg.MaxRTO = noRTO, noRTO, noRTO
	}
	cfg.MTUProbeInterval = -1
	ep := NewEndpoint(link, cfg)
	t.Cleanup(func() { ep.Close() })
	syn := wire.Header{Type: wire.Syn, ConnID: 300, SeqNr: 1, WndSize: peerWindow}
	ep.DeliverDatagram(syn.Append(nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ep.Accept(ctx)
	require.NoError(t, err)
	return &scriptedPeer{t: t, link: link, ep: ep, c: c}
}

// send writes n full packets and returns their sequence numbers once all left.
func (p *scriptedPeer) send(n int) []uint16 {
	p.t.Helper()
	before := len(p.link.packets(wire.Data))
	_, err := p.c.Write(make([]byte, n*(1200-wire.HeaderLen-sackReserve)))
	require.NoError(p.t, err)
	var seqs []uint16
	waitFor(p.t, "the packets to leave", func() bool {
		d := p.link.packets(wire.Data)
		if len(d) < before+n {
			return false
		}
		seqs = nil
		for _, h := range d[before : before+n] {
			seqs = append(seqs, h.SeqNr)
		}
		return true
	}, 5*time.Second)
	return seqs
}

// ack acknowledges everything up to ackNr and, selectively, sacked.
func (p *scriptedPeer) ack(ackNr uint16, sacked ...uint16) {
	h := withSACK(wire.Header{Type: wire.State, ConnID: 301, SeqNr: 2, AckNr: ackNr, WndSize: peerWindow}, sacked)
	p.ep.DeliverDatagram(h.Append(nil))
}

// ackWithData acknowledges like ack, on a data packet of the peer's (seq
// counts from 2) whose payload leaves room for an 8-byte selective ACK only.
func (p *scriptedPeer) ackWithData(seq, ackNr uint16, sacked ...uint16) {
	h := withSACK(wire.Header{Type: wire.Data, ConnID: 301, SeqNr: seq, AckNr: ackNr, WndSize: peerWindow}, sacked)
	require.LessOrEqual(p.t, len(h.SACK), 8, "the bitmask would not fit beside a full payload")
	p.ep.DeliverDatagram(append(h.Append(nil), make([]byte, 1100)...))
}

// withSACK sets h's selective ACK to sacked.
func withSACK(h wire.Header, sacked []uint16) wire.Header {
	ackNr := h.AckNr
	if len(sacked) > 0 {
		last := 0
		for _, s := range sacked {
			last = max(last, int(s-ackNr-2))
		}
		h.SACK = make([]byte, (last/8+1+3)/4*4)
		for _, s := range sacked {
			wire.SetSACKBit(h.SACK, int(s-ackNr-2))
		}
	}
	return h
}

// sends counts the transmissions of seq so far.
func (p *scriptedPeer) sends(seq uint16) int {
	n := 0
	for _, h := range p.link.packets(wire.Data) {
		if h.SeqNr == seq {
			n++
		}
	}
	return n
}

// waitResent waits until seq has left twice.
func (p *scriptedPeer) waitResent(seq uint16) {
	p.t.Helper()
	waitFor(p.t, "a resend of the lost packet", func() bool { return p.sends(seq) >= 2 }, 10*time.Second)
}

func (p *scriptedPeer) stats() RecoveryStats { return p.c.Stats().Recovery }

// TestRACKLossBehindARetransmission drops the first of four packets and the
// third: the first is found lost when the second is acknowledged; once its
// resend is acknowledged, the third, sent before that resend, is late by
// RACK's measure although its sequence number is above the resend's. It must
// be resent without a retransmission timeout.
func TestRACKLossBehindARetransmission(t *testing.T) {
	const rtt = 50 * time.Millisecond
	p := newScriptedPeer(t, Config{})
	s := p.send(4)
	time.Sleep(rtt)
	p.ack(s[0]-1, s[1]) // s[0] lost, s[2] and s[3] not yet arrived
	p.waitResent(s[0])
	// The resend's acknowledgement comes a full round trip after it, so it
	// answers the resend, not a late original.
	time.Sleep(rtt + rtt/5)
	p.ack(s[1]) // the resend of s[0] arrived; s[2] was lost, s[3] is late
	p.waitResent(s[2])
	st := p.stats()
	assert.Zero(t, st.RTOs, "stats %+v", st)
	assert.GreaterOrEqual(t, st.LostByRACK, int64(2), "stats %+v", st)
	assert.Zero(t, st.SpuriousRetransmits, "stats %+v", st)
}

// fixedWindow is a congestion controller with a window the test sets and no
// pacing, so a test can put as many packets in flight as it needs.
type fixedWindow struct{ cwnd atomic.Int64 }

func newFixedWindow(cwnd int) *fixedWindow {
	f := &fixedWindow{}
	f.cwnd.Store(int64(cwnd))
	return f
}

func (f *fixedWindow) OnPacketSent(time.Time, int, int)                               {}
func (f *fixedWindow) OnAck(time.Time, int, int, *congestion.RTTStats, time.Duration) {}
func (f *fixedWindow) OnLoss(time.Time, time.Time, int, int)                          {}
func (f *fixedWindow) OnRetransmissionTimeout(time.Time)                              {}
func (f *fixedWindow) CongestionWindow() int                                          { return int(f.cwnd.Load()) }
func (f *fixedWindow) PacingDelay(time.Time, int, time.Duration) time.Duration        { return 0 }
func (f *fixedWindow) SetMaxDatagramSize(int)                                         {}
func (f *fixedWindow) InSlowStart() bool                                              { return false }

// TestRACKBeyondSACKReach keeps more packets in flight than a selective ACK
// can cover, with two holes: once the first hole's resend is acknowledged,
// the packets past the bitmask's reach, though sent before that resend, have
// simply not been reported yet. They must not be declared lost.
func TestRACKBeyondSACKReach(t *testing.T) {
	p := newScriptedPeer(t, Config{NewController: func() congestion.Controller { return newFixedWindow(peerWindow) }})
	rackBeyondReach(t, p, sackReach+200, sackReach-1, 100, p.ack)
}

// rackBeyondReach sends n packets and loses s[0] and s[hole]; ack reports the
// others among the first reach, then, once s[0]'s resend arrived, the reach
// packets after the hole. RACK must find the two losses and resend nothing
// past the reach of either report.
func rackBeyondReach(t *testing.T, p *scriptedPeer, n, reach, hole int, ack func(ackNr uint16, sacked ...uint16)) {
	t.Helper()
	const rtt = 50 * time.Millisecond
	s := p.send(n)
	time.Sleep(rtt)
	var sacked []uint16
	for i := 1; i <= reach; i++ {
		if i != hole {
			sacked = append(sacked, s[i])
		}
	}
	ack(s[0]-1, sacked...) // s[0] and s[hole] lost
	p.waitResent(s[0])
	p.waitResent(s[hole])
	time.Sleep(rtt + rtt/5)
	sacked = sacked[:0]
	for i := hole + 1; i <= hole+reach; i++ {
		sacked = append(sacked, s[i])
	}
	ack(s[hole-1], sacked...) // s[0]'s resend arrived: the bitmask now reaches s[hole+reach]
	st := p.stats()
	assert.Equal(t, int64(2), st.LostByRACK, "stats %+v", st)
	// The last packet may have gone out again as a tail loss probe.
	for i := hole + reach + 1; i < n-1; i++ {
		require.Equal(t, 1, p.sends(s[i]), "packet %d of %d, beyond the SACK's reach, was resent", i, n)
	}
}

// TestHeadResendRestartsRTO loses the oldest packet: the retransmission
// timer counts from its resend, not from its first send, so that a resend
// lost in turn can be found and sent again before the timer fires.
func TestHeadResendRestartsRTO(t *testing.T) {
	const rtt = 50 * time.Millisecond
	p := newScriptedPeer(t, Config{})
	s := p.send(4)
	time.Sleep(rtt)
	p.ack(s[0]-1, s[1:]...) // s[0] lost
	p.waitResent(s[0])
	p.c.mu.Lock()
	base, resent := p.c.rtoBase, p.c.q[0].sentAt
	p.c.mu.Unlock()
	require.Equal(t, resent, base, "the retransmission timer's start, want the resend's time")
}

// TestSpuriousRetransmitCountedOnce resends a packet that was only late: the
// original's acknowledgement comes at once after the resend, and the peer
// then reports the resend as a duplicate. That is one needless resend, and
// the reordering window widens once.
func TestSpuriousRetransmitCountedOnce(t *testing.T) {
	const rtt = 50 * time.Millisecond
	p := newScriptedPeer(t, Config{})
	s := p.send(4)
	time.Sleep(rtt)
	p.ack(s[0]-1, s[1])
	p.waitResent(s[0])
	p.c.mu.Lock()
	before := p.c.reorderWindow()
	p.c.mu.Unlock()
	p.ack(s[1]) // the original s[0], late
	dup := wire.Header{Type: wire.State, ConnID: 301, SeqNr: 2, AckNr: s[1], WndSize: peerWindow,
		Duplicate: s[0], HasDuplicate: true}
	p.ep.DeliverDatagram(dup.Append(nil)) // and the resend, needless
	st := p.stats()
	assert.Equal(t, int64(1), st.SpuriousRetransmits, "stats %+v", st)
	p.c.mu.Lock()
	after, mult := p.c.reorderWindow(), p.c.reo.mult
	p.c.mu.Unlock()
	assert.Equal(t, 2, mult, "reordering window multiplier")
	assert.Greater(t, after, before, "the reordering window did not widen")
}

// TestLateOriginalIsNotTheRACKPacket builds a standing queue (the round trip
// grows from 50 to 200 ms), then loses a packet: its resend is acknowledged
// 60 ms later, longer than the minimum RTT but far shorter than the path's
// round trip now, so what arrived was the original, late. Taking the resend
// as the most recently sent packet delivered would declare lost every packet
// sent before it and still in the queue.
func TestLateOriginalIsNotTheRACKPacket(t *testing.T) {
	const minRTT, queued = 50 * time.Millisecond, 200 * time.Millisecond
	p := newScriptedPeer(t, Config{})
	s := p.send(2)
	time.Sleep(minRTT)
	p.ack(s[0])
	time.Sleep(queued - minRTT)
	p.ack(s[1])
	s = p.send(6)
	time.Sleep(queued)
	p.ack(s[0]-1, s[1]) // s[0] lost; s[2:] still queued
	p.waitResent(s[0])
	time.Sleep(minRTT + minRTT/5)
	p.ack(s[1])
	st := p.stats()
	assert.Equal(t, int64(1), st.LostByRACK, "stats %+v", st)
	// The last packet may have gone out again as a tail loss probe.
	for i := 2; i < len(s)-1; i++ {
		assert.Equal(t, 1, p.sends(s[i]), "packet %d, queued, was resent", i)
	}
}

// TestGapFillAckedAtOnce delivers packets 1, 3 and then 2 to a receiver whose
// delayed ACK would wait an hour: the out-of-order packet and the one filling
// the gap are both acknowledged at once, the latter cumulatively, so the
// sender's reordering window does not run out while the ACK waits.
func TestGapFillAckedAtOnce(t *testing.T) {
	link := &recordLink{keep: true}
	ep := NewEndpoint(link, Config{AckDelay: time.Hour, MTUProbeInterval: -1})
	defer ep.Close()
	syn := wire.Header{Type: wire.Syn, ConnID: 300, SeqNr: 1, WndSize: peerWindow}
	ep.DeliverDatagram(syn.Append(nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ep.Accept(ctx)
	require.NoError(t, err)
	data := func(seq uint16) {
		h := wire.Header{Type: wire.Data, ConnID: 301, SeqNr: seq, AckNr: c.isn - 1, WndSize: peerWindow}
		ep.DeliverDatagram(append(h.Append(nil), byte(seq)))
	}
	acks := func() []uint16 {
		var out []uint16
		for _, h := range link.packets(wire.State) {
			out = append(out, h.AckNr)
		}
		return out
	}
	start := len(acks()) // the SYN's acknowledgement
	data(2)
	require.Len(t, acks(), start, "a lone in-order packet was acknowledged before the delay")
	data(4)
	require.Equal(t, []uint16{2}, acks()[start:], "the out-of-order packet")
	data(3)
	require.Equal(t, []uint16{2, 4}, acks()[start:], "the packet that fills the gap")
	buf := make([]byte, 3)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, []byte{2, 3, 4}, buf)
}

// TestTailLossFoundByProbe loses the last two packets of a burst: nothing
// after them can reveal the loss, so a tail loss probe resends the last one,
// and its acknowledgement lets RACK find the other, without a timeout.
func TestTailLossFoundByProbe(t *testing.T) {
	const rtt = 50 * time.Millisecond
	p := newScriptedPeer(t, Config{})
	s := p.send(4)
	time.Sleep(rtt)
	p.ack(s[1]) // s[2] and s[3] lost
	p.waitResent(s[3])
	st := p.stats()
	require.Equal(t, int64(1), st.TailLossProbes, "stats %+v", st)
	// The probe's acknowledgement comes two round trips after it: on a busy
	// machine the first one may have measured more than rtt, and an answer
	// sooner than the minimum RTT would read as the original arriving late.
	time.Sleep(2 * rtt)
	p.ack(s[1], s[3])
	p.waitResent(s[2])
	st = p.stats()
	assert.Zero(t, st.RTOs, "stats %+v", st)
	assert.Equal(t, int64(1), st.LostByRACK, "stats %+v", st)
}

// TestReorderingSeenWidensWindow acknowledges the first of four packets a
// little after the other three, within the reordering window: no resend, and
// the window grows to cover a little more than that lateness.
func TestReorderingSeenWidensWindow(t *testing.T) {
	const rtt = 200 * time.Millisecond
	p := newScriptedPeer(t, Config{})
	s := p.send(4)
	time.Sleep(rtt)
	p.ack(s[0]-1, s[1], s[2], s[3])
	time.Sleep(rtt / 40) // well inside the window of a quarter of the RTT
	p.ack(s[3])
	p.c.mu.Lock()
	seen, persist, w := p.c.reo.seen, p.c.reo.persist, p.c.reorderWindow()
	p.c.mu.Unlock()
	require.Equal(t, 1, p.sends(s[0]), "a packet late within the reordering window was resent")
	assert.Positive(t, seen, "no reordering seen")
	assert.Equal(t, reorderPersist, persist)
	assert.GreaterOrEqual(t, w, seen+seen/4, "window %v, reordering seen %v", w, seen)
}

// TestReorderWindowPersistence widens the reordering window, then declares
// losses: those of one recovery (packets sent before it began) count once,
// and after reorderPersist recoveries without fresh evidence the window falls
// back to a quarter of the minimum RTT.
func TestReorderWindowPersistence(t *testing.T) {
	p := newScriptedPeer(t, Config{})
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rtt.UpdateRTT(40*time.Millisecond, time.Now())
	base := c.reorderWindow()
	t0 := time.Now()
	c.onSpurious(t0)
	c.onReordered(30 * time.Millisecond)
	require.Greater(t, c.reorderWindow(), base)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for i := range reorderPersist - 1 {
		// A recovery begins at 100i ms; two more losses of packets sent
		// before it belong to it.
		c.onLossRecovery(at(100*i-10), at(100*i))
		c.onLossRecovery(at(100*i-20), at(100*i+5))
		c.onLossRecovery(at(100*i-5), at(100*i+10))
	}
	require.Greater(t, c.reorderWindow(), base, "fell back before %d recoveries", reorderPersist)
	c.onLossRecovery(at(100*reorderPersist), at(100*reorderPersist+50))
	assert.Equal(t, base, c.reorderWindow(), "did not fall back after %d recoveries", reorderPersist)
}

// TestRACKBeyondAShortSACK is TestRACKBeyondSACKReach with the peer sending
// data too: its acknowledgements ride its data packets, whose selective ACKs
// have room for 64 packets only, so packets past those are unknown.
func TestRACKBeyondAShortSACK(t *testing.T) {
	p := newScriptedPeer(t, Config{NewController: func() congestion.Controller { return newFixedWindow(peerWindow) }})
	seq := uint16(1)
	rackBeyondReach(t, p, 200, 64, 30, func(ackNr uint16, sacked ...uint16) {
		seq++ // the peer's data packets count from 2
		p.ackWithData(seq, ackNr, sacked...)
	})
}

// TestLimboFreesTheWindow keeps more packets in flight than the peer's
// acknowledgements can report, then shrinks the congestion window below
// them: once a resend is acknowledged, the packets sent before it that no
// acknowledgement could report have left the network, delivered or lost.
// They must stop holding the window, or a loss found inside the reach waits
// for a probe or a timeout to be resent. Once the cumulative ACK reaches
// them, the one that was lost is found by RACK.
func TestLimboFreesTheWindow(t *testing.T) {
	const rtt = 50 * time.Millisecond
	const n, reach = 200, 64
	cc := newFixedWindow(peerWindow)
	p := newScriptedPeer(t, Config{NewController: func() congestion.Controller { return cc }})
	s := p.send(n)
	time.Sleep(rtt)
	var sacked []uint16
	for i := 1; i <= reach; i++ {
		if i != 10 {
			sacked = append(sacked, s[i])
		}
	}
	p.ackWithData(2, s[0]-1, sacked...) // s[0] and s[10] lost
	p.waitResent(s[0])
	p.waitResent(s[10])
	cc.cwnd.Store(50 * 1200) // far less than the 136 packets still in flight
	time.Sleep(rtt + rtt/5)
	sacked = sacked[:0]
	for i := 11; i < 11+reach; i++ {
		if i != 70 {
			sacked = append(sacked, s[i])
		}
	}
	p.ackWithData(3, s[9], sacked...) // s[0]'s resend arrived; s[70] lost
	// Found lost by RACK on this ACK, or by its reordering timer just after
	// when the machine is slow; never by the retransmission timer.
	waitFor(t, "the loss found to be resent", func() bool { return p.sends(s[70]) >= 2 }, 2*time.Second)
	require.Zero(t, p.stats().RTOs)
	require.NoError(t, p.c.checkInvariants())
	time.Sleep(rtt + rtt/5)
	sacked = sacked[:0]
	for i := 76; i < 76+reach; i++ {
		sacked = append(sacked, s[i])
	}
	p.ackWithData(4, s[74], sacked...) // the resends arrived; s[75], in limbo, was lost
	waitFor(t, "the lost packet in limbo to be resent", func() bool { return p.sends(s[75]) >= 2 }, 5*time.Second)
	require.NoError(t, p.c.checkInvariants())
	st := p.stats()
	assert.Zero(t, st.RTOs, "stats %+v", st)
	for i := 76; i < 76+reach; i++ {
		require.Equal(t, 1, p.sends(s[i]), "packet %d, delivered while in limbo, was resent", i)
	}
}

// TestLostHeadResendPastReach loses the oldest packet and then its resend,
// while every packet sent after the resend is past what the peer's
// acknowledgements can report (they ride its data packets): no
// acknowledgement can show the resend lost, yet it goes out again without a
// retransmission timeout.
func TestLostHeadResendPastReach(t *testing.T) {
	const rtt = 50 * time.Millisecond
	const n, reach = 100, 64
	p := newScriptedPeer(t, Config{NewController: func() congestion.Controller { return newFixedWindow(peerWindow) }})
	s := p.send(n)
	time.Sleep(rtt)
	var sacked []uint16
	for i := 1; i <= reach; i++ {
		sacked = append(sacked, s[i])
	}
	p.ackWithData(2, s[0]-1, sacked...) // s[0] lost
	p.waitResent(s[0])
	waitFor(t, "a second resend", func() bool { return p.sends(s[0]) >= 3 }, 10*time.Second)
	st := p.stats()
	assert.Zero(t, st.RTOs, "stats %+v", st)
	assert.Equal(t, int64(1), st.LostResends, "stats %+v", st)
	require.NoError(t, p.c.checkInvariants())
}

// TestRTOLeavesUnreportablePacketsInLimbo lets the retransmission timer fire
// with far more packets in flight than the peer's acknowledgements (riding
// its data packets) could report: the oldest goes again, the rest wait in
// limbo rather than all going again.
func TestRTOLeavesUnreportablePacketsInLimbo(t *testing.T) {
	const rtt, rto = 50 * time.Millisecond, 100 * time.Millisecond
	const n = 200
	p := newScriptedPeer(t, Config{InitialRTO: rto, MinRTO: rto, MaxRTO: 10 * rto,
		NewController: func() congestion.Controller { return newFixedWindow(peerWindow) }})
	s := p.send(n)
	time.Sleep(rtt)
	p.ackWithData(2, s[0]) // no selective ACK: it reaches s[1] only
	waitFor(t, "a retransmission timeout", func() bool { return p.stats().RTOs > 0 }, 10*time.Second)
	p.waitResent(s[1])
	st := p.stats()
	assert.Equal(t, st.RTOs, st.LostByRTO, "one packet lost per timeout; stats %+v", st)
	// The last packet may have gone out again as a tail loss probe.
	for i := 2; i < n-1; i++ {
		require.Equal(t, 1, p.sends(s[i]), "packet %d, past the reach, was resent; stats %+v", i, st)
	}
	require.NoError(t, p.c.checkInvariants())
}
