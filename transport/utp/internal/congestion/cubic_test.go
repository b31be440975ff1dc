package congestion

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ackRTT returns RTT stats holding one sample of d.
func ackRTT(d time.Duration) *RTTStats {
	var r RTTStats
	r.UpdateRTT(d, t0)
	return &r
}

func TestCubicInitialWindowAndSlowStart(t *testing.T) {
	c := NewCubic(CubicConfig{})
	require.Equal(t, 10*DefaultMaxDatagramSize, c.CongestionWindow(), "initial window")
	// Before the first packet the initial window follows the packet size;
	// after, the window keeps its bytes.
	c.SetMaxDatagramSize(1000)
	require.Equal(t, 10*1000, c.CongestionWindow(), "initial window after resizing to 1000-byte packets")
	c.OnPacketSent(t0, 0, 1000)
	c.SetMaxDatagramSize(1400)
	require.Equal(t, 10*1000, c.CongestionWindow(), "window after a resize once sending, want it kept")
	require.True(t, c.InSlowStart(), "a new controller is not in slow start")
	rtt := ackRTT(50 * time.Millisecond)
	w := c.CongestionWindow()
	c.OnAck(t0.Add(50*time.Millisecond), 5000, w, rtt, -1)
	require.Equal(t, w+5000, c.CongestionWindow(), "slow start growth from %d on 5000 bytes acked", w)
}

func TestCubicDoesNotGrowWhenApplicationLimited(t *testing.T) {
	c := NewCubic(CubicConfig{})
	rtt := ackRTT(50 * time.Millisecond)
	w := c.CongestionWindow()
	c.OnAck(t0.Add(50*time.Millisecond), 1200, 1200, rtt, -1)
	require.Equal(t, w, c.CongestionWindow(), "window grew with one packet of %d in flight", w)
}

func TestCubicLossReducesOncePerRound(t *testing.T) {
	c := NewCubic(CubicConfig{})
	rtt := ackRTT(50 * time.Millisecond)
	now := t0
	for i := 0; i < 5; i++ { // grow to 320 packets' worth
		now = now.Add(50 * time.Millisecond)
		c.OnAck(now, c.CongestionWindow(), c.CongestionWindow(), rtt, -1)
	}
	w := c.CongestionWindow()
	c.OnLoss(now, now.Add(-40*time.Millisecond), 1200, w)
	want := int(float64(w) * cubicBeta)
	require.Equal(t, want, c.CongestionWindow(), "window after loss, want 0.7 x %d", w)
	require.False(t, c.InSlowStart(), "still in slow start after a loss")
	// A loss of a packet sent before the reduction does not cut again...
	c.OnLoss(now.Add(time.Millisecond), now.Add(-10*time.Millisecond), 1200, w)
	require.Equal(t, want, c.CongestionWindow(), "second loss from the same round cut the window")
	// ...but one sent after it does.
	c.OnLoss(now.Add(100*time.Millisecond), now.Add(time.Millisecond), 1200, w)
	require.Less(t, c.CongestionWindow(), want, "a loss from a later round left the window")
}

func TestCubicRetransmissionTimeout(t *testing.T) {
	c := NewCubic(CubicConfig{MinWindowPackets: 2})
	w := c.CongestionWindow()
	c.OnRetransmissionTimeout(t0)
	require.Equal(t, 2*DefaultMaxDatagramSize, c.CongestionWindow(), "window after RTO, want the minimum")
	c.OnRetransmissionTimeout(t0.Add(time.Second)) // backed off, no ACK between
	cc := c.(*cubic)
	require.Equal(t, float64(w)*cubicBeta, cc.ssthresh, "ssthresh after two timeouts in a row, want one reduction")
	require.True(t, c.InSlowStart(), "not in slow start after RTO")
}

func TestCubicMaxWindow(t *testing.T) {
	c := NewCubic(CubicConfig{MaxWindow: 50000})
	rtt := ackRTT(50 * time.Millisecond)
	now := t0
	for i := 0; i < 20; i++ {
		now = now.Add(50 * time.Millisecond)
		c.OnAck(now, c.CongestionWindow(), c.CongestionWindow(), rtt, -1)
	}
	require.Equal(t, 50000, c.CongestionWindow(), "window, want the cap")
}

// In congestion avoidance the window follows the cubic curve: concave back up
// to the old maximum in K seconds, then convex beyond it.
func TestCubicCurve(t *testing.T) {
	c := NewCubic(CubicConfig{}).(*cubic)
	c.SetMaxDatagramSize(1000)
	// At 100 ms the cubic curve grows faster than the Reno-friendly estimate.
	rtt := ackRTT(100 * time.Millisecond)
	c.cwnd = 100 * 1000
	c.OnLoss(t0, t0.Add(-time.Millisecond), 1000, 100000) // wMax 100, cwnd 70
	now := t0
	for now.Sub(t0) < 10*time.Second {
		now = now.Add(time.Millisecond)
		c.OnAck(now, c.CongestionWindow()/100, c.CongestionWindow(), rtt, -1) // a window per RTT
		if now.Sub(t0) == 4217*time.Millisecond {
			require.InDelta(t, 100000, c.CongestionWindow(), 3000, "window in bytes at K, want about the old maximum")
		}
	}
	require.InDelta(t, 4.217, c.k, 0.01, "K in seconds") // cbrt(30/0.4)
	require.GreaterOrEqual(t, c.CongestionWindow(), 150000, "window in bytes 10 s after the loss, want convex growth past 150 packets")
}

func TestPacerAllowsBurstThenPaces(t *testing.T) {
	c := NewCubic(CubicConfig{})
	rtt := ackRTT(100 * time.Millisecond)
	c.OnAck(t0, 0, 0, rtt, -1)
	// 12000 bytes per 100 ms, times 2 in slow start: 240 kB/s, a 1200-byte
	// packet every 5 ms, bursts of 4.
	now := t0
	sent := 0
	for sent < 4 {
		require.Zero(t, c.PacingDelay(now, 1200, 0), "packet %d of the burst waits", sent)
		c.OnPacketSent(now, sent*1200, 1200)
		sent++
	}
	require.InDelta(t, 5*time.Millisecond, c.PacingDelay(now, 1200, 0), float64(time.Millisecond), "wait of the next packet after the burst")
	// A timer 20 ms late finds four packets' credit, not one.
	now = now.Add(25 * time.Millisecond)
	for i := 0; i < 4; i++ {
		require.Zero(t, c.PacingDelay(now, 1200, 0), "catch-up packet %d waits", i)
		c.OnPacketSent(now, 1200, 1200)
	}
}
