package congestion

import (
	"math"
	"time"
)

// Pacing constants. The engine sends from one timer loop, and timers wake late
// (often by a millisecond or more on a loaded machine, by several when a busy
// process holds the CPU); a pacer that let out one packet per wake-up would
// fall ever further behind its rate. So the bucket holds a burst of a few
// packets, or what the rate earns in pacingGranularity, or in the lateness the
// pacer has lately seen, whichever is most: a late wake-up finds the credit it
// missed and sends it at once.
const (
	// pacingBurstPackets is the least burst the bucket holds.
	pacingBurstPackets = 4
	// pacingGranularity is the timer slack the burst covers at high rates.
	pacingGranularity = 2 * time.Millisecond
	// MaxPacingCatchUp caps the lateness the burst covers, so a stall of the
	// whole process does not end in a flood. A sender may leave a pacing
	// wait this long past its time to something else (an acknowledgement)
	// without losing rate.
	MaxPacingCatchUp = 10 * time.Millisecond
	// maxPacingDelay caps one wait, so a rate estimate gone wrong never
	// stalls a connection for long.
	maxPacingDelay = 250 * time.Millisecond
	// minPacingDelay is the shortest wait: a sender whose packets are due
	// sooner than this one after another sends what a millisecond earns at
	// each wake-up. Every wake-up of the sender costs a thread switch, which
	// on a slow path (a packet every half millisecond at 20 Mbit/s) is most
	// of its work per packet; a millisecond's burst is what Linux paces in
	// (TSO autosizing) and quic-go's MinPacingDelay, and any queue holds it.
	minPacingDelay = time.Millisecond
)

// pacer is a token bucket: tokens (bytes) accrue at rate bytes per second up to
// the burst, each packet sent spends its size, and a packet may leave when the
// bucket holds its size. Bytes sent without asking (the engine may send a
// retransmission at once) drive the bucket negative, which the next packets
// repay.
type pacer struct {
	tokens float64   // bytes that may leave now; negative is a debt
	last   time.Time // when tokens was last brought up to date
	// due is when the packet the pacer last held back was told it could go;
	// late is the largest lateness past due seen lately, decaying by an
	// eighth per wake-up.
	due  time.Time
	late time.Duration
	// leeway is how long past due the sender said it may come; it holds
	// until the next packet may leave at once.
	leeway time.Duration
}

// burst is the bucket's size at rate for packets of size bytes.
func (p *pacer) burst(rate float64, size int) float64 {
	// A late wake-up comes after the shortest wait as well as the lateness,
	// seen or announced.
	slack := max(pacingGranularity, min(max(p.late, p.leeway), MaxPacingCatchUp)+minPacingDelay)
	return max(float64(pacingBurstPackets*size), rate*slack.Seconds())
}

// refill brings the bucket up to now at rate. A new or idle bucket starts full.
func (p *pacer) refill(now time.Time, rate float64, size int) {
	if !p.due.IsZero() && now.After(p.due) {
		p.late = max(now.Sub(p.due), p.late-p.late/8)
		p.due = time.Time{}
	}
	burst := p.burst(rate, size)
	if p.last.IsZero() {
		p.tokens, p.last = burst, now
		return
	}
	if elapsed := now.Sub(p.last); elapsed > 0 {
		p.tokens = min(p.tokens+rate*elapsed.Seconds(), burst)
		p.last = now
	}
}

// delay is how long a packet of size bytes must wait at rate (bytes per
// second; zero or less means unpaced), for a sender that may come up to
// leeway past it.
func (p *pacer) delay(now time.Time, rate float64, size int, leeway time.Duration) time.Duration {
	if rate <= 0 || math.IsInf(rate, 1) {
		return 0
	}
	p.refill(now, rate, size)
	short := float64(size) - p.tokens
	if short <= 0 {
		p.leeway = 0
		return 0
	}
	p.leeway = leeway
	d := time.Duration(short / rate * float64(time.Second))
	if d <= 0 {
		// Less than a nanosecond short: not worth a timer.
		return 0
	}
	d = min(max(d, minPacingDelay), maxPacingDelay)
	p.due = now.Add(d)
	return d
}

// sent spends size bytes at now.
func (p *pacer) sent(now time.Time, rate float64, size, mss int) {
	if rate <= 0 {
		return
	}
	p.refill(now, rate, mss)
	// A debt of more than one burst means the engine sends unpaced; do not
	// let it build a wait longer than a burst takes to earn back.
	p.tokens = max(p.tokens-float64(size), -p.burst(rate, mss))
}

// resizedWindow is a window after the packet size changes to mss. While
// nothing has been sent the window is still the initial one, counted in
// packets, so it follows the size; after, it keeps its bytes, which are what
// the path's rate is made of. Either way it stays within the bounds.
func resizedWindow(cwnd float64, sentAny bool, initPackets, minPackets, mss, maxWindow int) float64 {
	if !sentAny {
		cwnd = float64(initPackets * mss)
	}
	return min(max(cwnd, float64(minPackets*mss)), float64(maxWindow))
}

// windowPacingRate is the pacing rate of a window-based controller, in bytes
// per second: the window per smoothed RTT times the gain, or 0 (unpaced)
// before the first RTT sample. The pacer runs ahead of the window so that the
// window, not the pacer, limits the flow, and further ahead in slow start so
// that the window can double each round.
func windowPacingRate(cwnd float64, srtt time.Duration, slowStart bool) float64 {
	if srtt <= 0 {
		return 0
	}
	gain := pacingGainAvoidance
	if slowStart {
		gain = pacingGainSlowStart
	}
	return gain * cwnd / srtt.Seconds()
}

// recovery remembers when a window-based controller last cut its window.
// Packets sent before the cut were sent at a rate already known to be too
// high: their losses do not cut again, and ACKs for them do not grow the
// window.
type recovery struct{ start time.Time }

// cut records a cut at now.
func (r *recovery) cut(now time.Time) { r.start = now }

// newEvent reports whether losing a packet sent at sent is a new congestion
// event.
func (r *recovery) newEvent(sent time.Time) bool { return r.start.IsZero() || sent.After(r.start) }

// acksOld reports whether an ACK at now acknowledges a packet sent before the
// cut, guessing the packet's send time from the ACK's RTT sample.
func (r *recovery) acksOld(now time.Time, rtt *RTTStats) bool {
	return !r.start.IsZero() && !now.Add(-rtt.LatestRTT()).After(r.start)
}
