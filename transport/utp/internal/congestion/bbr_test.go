package congestion

import (
	"testing"
	"time"
)

// A timeout drops BBR's window to the minimum; the first ACK after it brings
// back the window the model had.
func TestBBRRetransmissionTimeout(t *testing.T) {
	b := NewBBR(BBRConfig{InitialWindowPackets: 20})
	w := b.CongestionWindow()
	b.OnRetransmissionTimeout(t0)
	b.OnRetransmissionTimeout(t0.Add(time.Second))
	if got := b.CongestionWindow(); got != bbrMinCwndPackets*DefaultMaxDatagramSize {
		t.Fatalf("window %d after RTO, want the minimum", got)
	}
	b.OnAck(t0.Add(2*time.Second), 1200, 2400, ackRTT(50*time.Millisecond), -1)
	if got := b.CongestionWindow(); got < w {
		t.Fatalf("window %d after the path delivered again, want the %d it had", got, w)
	}
}

// Startup paces at 2.885 times the window per RTT until there is a rate
// sample, and at the gain times the estimated rate after.
func TestBBRPacingRate(t *testing.T) {
	b := NewBBR(BBRConfig{}).(*bbr)
	if r := b.pacingRate(); r != 0 {
		t.Fatalf("pacing rate %v before any RTT sample, want unpaced", r)
	}
	b.OnAck(t0, 0, 0, ackRTT(100*time.Millisecond), -1)
	if r, want := b.pacingRate(), bbrHighGain*float64(10*DefaultMaxDatagramSize)/0.1; r != want {
		t.Fatalf("pacing rate %v, want %v", r, want)
	}
	b.maxBw.reset(0, 1e6)
	if r, want := b.pacingRate(), bbrHighGain*1e6; r != want {
		t.Fatalf("pacing rate %v with a 1 MB/s estimate, want %v", r, want)
	}
}

// OnAppLimited reaches the rate sampler through the optional interface.
func TestBBRAppLimitedObserver(t *testing.T) {
	c := NewDefault()
	o, ok := c.(AppLimitedObserver)
	if !ok {
		t.Fatal("the default controller does not take app-limited marks")
	}
	c.OnPacketSent(t0, 0, 1200)
	o.OnAppLimited(1200)
	if c.(*bbr).rs.appLimited == 0 {
		t.Fatal("OnAppLimited did not mark the sampler")
	}
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
	if !c.InSlowStart() {
		t.Fatal("ten app-limited rounds ended startup")
	}
}
