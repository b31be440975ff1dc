package congestion

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBaseDelayFollowsDrift(t *testing.T) {
	for _, drift := range []float64{400e-6, -400e-6} {
		var h baseDelay
		for s := 0; s < 600; s++ {
			now := t0.Add(time.Duration(s) * time.Second)
			skew := time.Duration(drift * float64(time.Duration(s)*time.Second))
			// A queue of 0-30 ms that comes and goes on the forward path.
			queue := time.Duration(s%7) * 5 * time.Millisecond
			rtt := 40*time.Millisecond + queue
			h.add(now, 20*time.Millisecond+queue+skew, rtt)
			if s < 120 {
				continue
			}
			got, want := h.get(now), 20*time.Millisecond+skew
			require.InDelta(t, want, got, float64(3*time.Millisecond), "%+.0f ppm at %d s: base %v, want %v", drift*1e6, s, got, want)
		}
	}
}

func TestLEDBATGrowsBelowTargetShrinksAbove(t *testing.T) {
	l := NewLEDBAT(LEDBATConfig{}).(*ledbat)
	l.SetMaxDatagramSize(1000)
	l.slowStart = false
	l.cwnd = 20000
	rtt := ackRTT(50 * time.Millisecond)
	now := t0
	l.OnAck(now, 1000, 20000, rtt, 30*time.Millisecond) // base 30 ms
	w := l.cwnd
	for i := 0; i < 20; i++ { // a window at no queue: about a packet more
		now = now.Add(2 * time.Millisecond)
		l.OnAck(now, 1000, 20000, rtt, 30*time.Millisecond)
	}
	require.InDelta(t, 1000, l.cwnd-w, 100, "a window at zero queuing delay grew the window by %.0f bytes, want one packet", l.cwnd-w)
	w = l.cwnd
	for i := 0; i < 8; i++ { // 200 ms of queue: twice the target
		now = now.Add(2 * time.Millisecond)
		l.OnAck(now, 1000, 21000, rtt, 230*time.Millisecond)
	}
	require.Less(t, l.cwnd, w, "the window did not shrink above the target")
}

func TestLEDBATLossHalvesOncePerRound(t *testing.T) {
	l := NewLEDBAT(LEDBATConfig{InitialWindowPackets: 40})
	w := l.CongestionWindow()
	l.OnLoss(t0, t0.Add(-time.Millisecond), 1200, w)
	l.OnLoss(t0.Add(time.Millisecond), t0.Add(-time.Millisecond), 1200, w)
	require.Equal(t, w/2, l.CongestionWindow(), "window after two losses of one round")
	require.False(t, l.InSlowStart(), "in slow start after a loss")
	l.OnRetransmissionTimeout(t0.Add(time.Second))
	require.Equal(t, 2*DefaultMaxDatagramSize, l.CongestionWindow(), "window after RTO, want the minimum")
}
