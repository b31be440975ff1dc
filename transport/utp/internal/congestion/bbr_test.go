package congestion

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A timeout drops BBR's window to the minimum; the first ACK after it brings
// back the window the model had.
func TestBBRRetransmissionTimeout(t *testing.T) {
	b := NewBBR(BBRConfig{InitialWindowPackets: 20})
	w := b.CongestionWindow()
	b.OnRetransmissionTimeout(t0)
	b.OnRetransmissionTimeout(t0.Add(time.Second))
	require.Equal(t, bbrMinCwndPackets*DefaultMaxDatagramSize, b.CongestionWindow(), "window after RTO, want the minimum")
	b.OnAck(t0.Add(2*time.Second), 1200, 2400, ackRTT(50*time.Millisecond), -1)
	require.GreaterOrEqual(t, b.CongestionWindow(), w, "window after the path delivered again, want the one it had")
}

// Startup paces at 2.885 times the window per RTT until there is a rate
// sample, and at the gain times the estimated rate after.
func TestBBRPacingRate(t *testing.T) {
	b := NewBBR(BBRConfig{}).(*bbr)
	require.Zero(t, b.pacingRate(), "pacing rate before any RTT sample, want unpaced")
	b.OnAck(t0, 0, 0, ackRTT(100*time.Millisecond), -1)
	require.Equal(t, bbrHighGain*float64(10*DefaultMaxDatagramSize)/0.1, b.pacingRate(), "pacing rate")
	b.maxBw.reset(0, 1e6)
	require.Equal(t, bbrHighGain*1e6, b.pacingRate(), "pacing rate with a 1 MB/s estimate")
}

// OnAppLimited reaches the rate sampler through the optional interface.
func TestBBRAppLimitedObserver(t *testing.T) {
	c := NewDefault()
	o, ok := c.(AppLimitedObserver)
	require.True(t, ok, "the default controller does not take app-limited marks")
	c.OnPacketSent(t0, 0, 1200)
	o.OnAppLimited(1200)
	require.NotZero(t, c.(*bbr).rs.appLimited, "OnAppLimited did not mark the sampler")
}

// An application that sends a trickle does not end startup: its rate stops
// growing because it has nothing more to send, not because the pipe is full.
func TestBBRStartupIgnoresAppLimitedRounds(t *testing.T) {
	c := NewBBR(BBRConfig{}).(*bbr)
	var rtt RTTStats
	now := t0
	for round := 0; round < 10; round++ {
		// Two packets a round, then nothing to send.
		for i := 0; i < 2; i++ {
			c.OnPacketSent(now, i*1200, 1200)
		}
		c.OnAppLimited(2400)
		now = now.Add(50 * time.Millisecond)
		rtt.UpdateRTT(50*time.Millisecond, now)
		c.OnAck(now, 1200, 2400, &rtt, -1)
		c.OnAck(now, 1200, 1200, &rtt, -1)
	}
	require.True(t, c.InSlowStart(), "ten app-limited rounds ended startup")
}
