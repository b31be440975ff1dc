package congestion

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A steady flow of a packet a millisecond, each acknowledged 50 ms after it
// left, gives samples of one packet a millisecond.
func TestRateSamplerSteady(t *testing.T) {
	var rs rateSampler
	const rtt = 50 * time.Millisecond
	want := 1200 / time.Millisecond.Seconds()
	var got float64
	for ms := 0; ms < 500; ms++ {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		if ms >= 50 {
			got = rs.onAck(now, 1200, rtt, rtt).rate
		}
		rs.onSent(now, min(ms, 50)*1200, 1200, rtt)
	}
	require.InEpsilon(t, want, got, 0.05, "rate in B/s")
}

// ACKs held back 10 ms (a descheduled receiver) and then delivered at once do
// not read as a burst of bandwidth: the send interval bounds the sample.
func TestRateSamplerBunchedAcks(t *testing.T) {
	var rs rateSampler
	const rtt = 50 * time.Millisecond
	want := 1200 / time.Millisecond.Seconds()
	peak := 0.0
	for ms := 0; ms < 1000; ms++ {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		rs.onSent(now, 50*1200, 1200, rtt)
		if ms >= 60 && ms%10 == 0 {
			// Ten packets' ACKs at once, the newest sent 50 ms ago.
			for i := 9; i >= 0; i-- {
				s := rs.onAck(now, 1200, rtt+time.Duration(i)*time.Millisecond, rtt)
				peak = max(peak, s.rate)
			}
		}
	}
	require.LessOrEqual(t, peak, 1.25*want, "peak sample in B/s from bunched ACKs, want at most 1.25 x %.0f", want)
	require.GreaterOrEqual(t, peak, 0.8*want, "peak sample in B/s, want about %.0f", want)
}

// Samples over less than the minimum RTT are dropped, as are those for a
// packet sent before the oldest record.
func TestRateSamplerRejects(t *testing.T) {
	var rs rateSampler
	rs.onSent(t0, 0, 1200, 0)
	require.Zero(t, rs.onAck(t0.Add(time.Millisecond), 1200, time.Millisecond, 10*time.Millisecond).rate, "sample over 1 ms with a 10 ms minimum RTT")
	require.Zero(t, rs.onAck(t0.Add(time.Hour), 1200, 2*time.Hour, 0).rate, "sample for a packet sent before every record")
}

func TestRateSamplerAppLimited(t *testing.T) {
	var rs rateSampler
	rs.onSent(t0, 0, 1200, 0)
	rs.onAppLimited(1200)
	rs.onSent(t0.Add(time.Millisecond), 1200, 1200, 0)
	s := rs.onAck(t0.Add(51*time.Millisecond), 1200, 50*time.Millisecond, 0)
	require.True(t, s.appLimited, "a packet sent while app-limited gave a sample not marked so")
	// Sent before what was in flight at the mark is all delivered: still
	// app-limited; the ACK that delivers past the mark clears it.
	rs.onSent(t0.Add(52*time.Millisecond), 0, 1200, 0)
	s = rs.onAck(t0.Add(102*time.Millisecond), 1200, 50*time.Millisecond, 0)
	require.True(t, s.appLimited, "a packet sent before the mark cleared gave a sample not marked app-limited")
	rs.onSent(t0.Add(103*time.Millisecond), 0, 1200, 0)
	s = rs.onAck(t0.Add(153*time.Millisecond), 1200, 50*time.Millisecond, 0)
	require.False(t, s.appLimited, "app-limited mark outlived the data in flight when it was set")
}

// The sender running dry while a timeout's loss is repaired does not shorten
// the timeout's mark, which covers every byte sent before it.
func TestRateSamplerAppLimitedKeepsRecoveryMark(t *testing.T) {
	var rs rateSampler
	for i := range 10 {
		rs.onSent(t0, i*1200, 1200, 0)
	}
	rs.onRecoveryLimited()
	rs.lost += 9 * 1200 // the timeout declared all but one packet lost
	rs.onAppLimited(1200)
	rs.onAck(t0.Add(50*time.Millisecond), 1200, 50*time.Millisecond, 0)
	for i := range 3 {
		sent := t0.Add(time.Duration(51+50*i) * time.Millisecond)
		rs.onSent(sent, 0, 1200, 0)
		s := rs.onAck(sent.Add(50*time.Millisecond), 1200, 50*time.Millisecond, 0)
		require.True(t, s.appLimited, "resend %d while the timeout's loss is repaired gave a sample not marked app-limited", i)
	}
}

func TestMaxFilter(t *testing.T) {
	var f maxFilter
	f.update(0, 10, 100)
	f.update(1, 10, 50)
	f.update(5, 10, 70)
	require.Equal(t, 100.0, f.get(), "max")
	f.update(11, 10, 60) // round 0's 100 has left the window
	require.Equal(t, 70.0, f.get(), "max after expiry, want the next best")
	f.update(12, 10, 200)
	require.Equal(t, 200.0, f.get(), "max, want the new one")
	f.update(40, 10, 1)
	require.Equal(t, 1.0, f.get(), "max after everything expired")
}

func TestRoundCounter(t *testing.T) {
	var r roundCounter
	require.True(t, r.onDone(1200, 12000), "the first ACK does not start a round")
	for i := 0; i < 9; i++ {
		require.False(t, r.onDone(1200, 12000), "round ended after %d of 10 packets", i+1)
	}
	require.True(t, r.onDone(1200, 12000), "round did not end after the 10 packets in flight at its start")
	require.Equal(t, int64(2), r.count, "round count")
}

// An ACK that reports at once a window's worth of packets sent long before
// (they arrived beyond the selective ACK's reach of a gap, which has just
// closed) does not read as a burst of bandwidth: a sample counts no more
// than was sent in its packet's send interval.
func TestRateSamplerLateReport(t *testing.T) {
	var rs rateSampler
	const rtt = 50 * time.Millisecond
	want := 1200 / time.Millisecond.Seconds()
	peak := 0.0
	for ms := 0; ms < 1000; ms++ {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		rs.onSent(now, 50*1200, 1200, rtt)
		if ms < 50 {
			continue
		}
		acked := 1200
		if ms%200 == 0 {
			acked += 100 * 1200 // 100 packets reported late
		}
		peak = max(peak, rs.onAck(now, acked, rtt, rtt).rate)
	}
	require.LessOrEqual(t, peak, 1.1*want, "peak sample in B/s with late reports, want at most 1.1 x %.0f", want)
	require.GreaterOrEqual(t, peak, 0.9*want, "peak sample in B/s, want about %.0f", want)
}

// A sampler holds its send records only while something is in flight: once
// BBR hears that everything was acknowledged, the ring goes back to the pool,
// and the next send takes one again and samples as before.
func TestRateSamplerIdleKeepsNoRing(t *testing.T) {
	b := NewBBR(BBRConfig{}).(*bbr)
	require.Nil(t, b.rs.ring, "ring before any send")
	const rtt = 50 * time.Millisecond
	now := t0
	for round := range 3 {
		for i := range 4 {
			b.OnPacketSent(now.Add(time.Duration(i)*time.Millisecond), i*1200, 1200)
		}
		require.NotNil(t, b.rs.ring, "round %d: ring while packets are in flight", round)
		b.maxBw.reset(0, 0)
		for i := range 4 {
			b.OnAck(now.Add(rtt+time.Duration(i)*time.Millisecond), 1200, (4-i)*1200, ackRTT(rtt), -1)
		}
		require.Positive(t, b.bw(), "round %d: bandwidth estimate from this round's samples", round)
		require.Nil(t, b.rs.ring, "round %d: ring once nothing is in flight", round)
		require.Zero(t, b.rs.n, "round %d: records once nothing is in flight", round)
		now = now.Add(time.Second)
	}
}
