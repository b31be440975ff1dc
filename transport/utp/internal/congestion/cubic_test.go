package congestion

import (
	"testing"
	"time"
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
	if got := c.CongestionWindow(); got != 10*DefaultMaxDatagramSize {
		t.Fatalf("initial window %d, want %d", got, 10*DefaultMaxDatagramSize)
	}
	// Before the first packet the initial window follows the packet size;
	// after, the window keeps its bytes.
	c.SetMaxDatagramSize(1000)
	if got := c.CongestionWindow(); got != 10*1000 {
		t.Fatalf("initial window %d after resizing to 1000-byte packets, want 10000", got)
	}
	c.OnPacketSent(t0, 0, 1000)
	c.SetMaxDatagramSize(1400)
	if got := c.CongestionWindow(); got != 10*1000 {
		t.Fatalf("window %d after a resize once sending, want it kept at 10000", got)
	}
	if !c.InSlowStart() {
		t.Fatal("a new controller is not in slow start")
	}
	rtt := ackRTT(50 * time.Millisecond)
	w := c.CongestionWindow()
	c.OnAck(t0.Add(50*time.Millisecond), 5000, w, rtt, -1)
	if got := c.CongestionWindow(); got != w+5000 {
		t.Fatalf("slow start grew %d -> %d on 5000 bytes acked", w, got)
	}
}

func TestCubicDoesNotGrowWhenApplicationLimited(t *testing.T) {
	c := NewCubic(CubicConfig{})
	rtt := ackRTT(50 * time.Millisecond)
	w := c.CongestionWindow()
	c.OnAck(t0.Add(50*time.Millisecond), 1200, 1200, rtt, -1)
	if got := c.CongestionWindow(); got != w {
		t.Fatalf("window grew %d -> %d with one packet of %d in flight", w, got, w)
	}
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
	if got := c.CongestionWindow(); got != want {
		t.Fatalf("after loss window %d, want %d (0.7 x %d)", got, want, w)
	}
	if c.InSlowStart() {
		t.Fatal("still in slow start after a loss")
	}
	// A loss of a packet sent before the reduction does not cut again...
	c.OnLoss(now.Add(time.Millisecond), now.Add(-10*time.Millisecond), 1200, w)
	if got := c.CongestionWindow(); got != want {
		t.Fatalf("second loss from the same round cut the window to %d", got)
	}
	// ...but one sent after it does.
	c.OnLoss(now.Add(100*time.Millisecond), now.Add(time.Millisecond), 1200, w)
	if got := c.CongestionWindow(); got >= want {
		t.Fatalf("a loss from a later round left the window at %d", got)
	}
}

func TestCubicRetransmissionTimeout(t *testing.T) {
	c := NewCubic(CubicConfig{MinWindowPackets: 2})
	w := c.CongestionWindow()
	c.OnRetransmissionTimeout(t0)
	if got := c.CongestionWindow(); got != 2*DefaultMaxDatagramSize {
		t.Fatalf("after RTO window %d, want the minimum %d", got, 2*DefaultMaxDatagramSize)
	}
	c.OnRetransmissionTimeout(t0.Add(time.Second)) // backed off, no ACK between
	cc := c.(*cubic)
	if want := float64(w) * cubicBeta; cc.ssthresh != want {
		t.Fatalf("ssthresh %v after two timeouts in a row, want one reduction to %v", cc.ssthresh, want)
	}
	if !c.InSlowStart() {
		t.Fatal("not in slow start after RTO")
	}
}

func TestCubicMaxWindow(t *testing.T) {
	c := NewCubic(CubicConfig{MaxWindow: 50000})
	rtt := ackRTT(50 * time.Millisecond)
	now := t0
	for i := 0; i < 20; i++ {
		now = now.Add(50 * time.Millisecond)
		c.OnAck(now, c.CongestionWindow(), c.CongestionWindow(), rtt, -1)
	}
	if got := c.CongestionWindow(); got != 50000 {
		t.Fatalf("window %d, want the cap 50000", got)
	}
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
			if w := c.CongestionWindow(); w < 97000 || w > 103000 {
				t.Fatalf("window %d bytes at K, want about the old maximum 100000", w)
			}
		}
	}
	if want := 4.217; c.k < want-0.01 || c.k > want+0.01 { // cbrt(30/0.4)
		t.Fatalf("K = %.3f s, want %.3f", c.k, want)
	}
	if got := c.CongestionWindow(); got < 150000 {
		t.Fatalf("window %d bytes 10 s after the loss, want convex growth past 150 packets", got)
	}
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
		if d := c.PacingDelay(now, 1200); d != 0 {
			t.Fatalf("packet %d of the burst waits %v", sent, d)
		}
		c.OnPacketSent(now, sent*1200, 1200)
		sent++
	}
	if d := c.PacingDelay(now, 1200); d < 4*time.Millisecond || d > 6*time.Millisecond {
		t.Fatalf("after the burst the next packet waits %v, want 5 ms", d)
	}
	// A timer 20 ms late finds four packets' credit, not one.
	now = now.Add(25 * time.Millisecond)
	for i := 0; i < 4; i++ {
		if d := c.PacingDelay(now, 1200); d != 0 {
			t.Fatalf("catch-up packet %d waits %v", i, d)
		}
		c.OnPacketSent(now, 1200, 1200)
	}
}
