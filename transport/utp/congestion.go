package utp

import (
	"context"
	"math"
	"sync"
	"time"
)

// CongestionConfig tunes the delay-based pacing controller that every path runs, shared by all streams on that path.
// anacrolix/utp has no congestion control of its own, so this controller is what keeps a bottleneck link from being
// flooded: it paces writes at a rate that keeps the queuing delay its probes measure near TargetDelay.
// The zero value selects the defaults documented on each field.
type CongestionConfig struct {
	// TargetDelay is the queuing delay the controller aims to keep at the bottleneck (RFC 6817's TARGET).
	// Default 12 ms: RFC 6817 allows up to 100 ms, but a home router's 64 KB queue at 20 Mbit/s holds only ~26 ms,
	// so a 100 ms target would overflow it; 12 ms keeps such a queue under half full with room for pacing bursts
	// and the delay of the feedback loop.
	TargetDelay time.Duration
	// InitialRate is the pacing rate, in bytes per second, before any RTT sample arrives. Default 1 MiB/s.
	InitialRate float64
	// MinRate is the rate the controller never goes below, in bytes per second, however much loss it sees, so a path
	// in trouble still carries retransmissions and keepalives. Default 32 KiB/s.
	MinRate float64
	// MaxRate caps the pacing rate, in bytes per second. Default 1 GiB/s (in practice: unlimited).
	MaxRate float64
	// Gain scales how fast the window moves toward the target (RFC 6817's GAIN). Default 1.
	Gain float64
	// LossBackoff multiplies the window when a probe is lost while a queue had built up (a congestive loss).
	// Losses without a standing queue look random and cost only a quarter of that reduction. Default 0.5.
	LossBackoff float64
	// BaseHistory is how long the minimum RTT (the base delay) is remembered, in one-minute buckets as RFC 6817's
	// BASE_HISTORY. Default 10 minutes.
	BaseHistory time.Duration
	// Burst is how many bytes the pacer lets out back-to-back. Default 4 packets (4 x 1384 B). Above about
	// 2.8 MB/s the pacer also allows 2 ms worth of bytes, because timers cannot wake more precisely than that.
	Burst int
}

const (
	// rttFloor keeps the window-to-rate conversion sane on sub-millisecond paths: without it a loopback RTT
	// that jitters from 0.1 to 2 ms would swing the rate twenty-fold.
	rttFloor = 10 * time.Millisecond
	// timerSlack is how late a timer may wake; the pacer grants that much credit so oversleeping loses no rate.
	timerSlack = 2 * time.Millisecond
	// recentSamples bounds how many recent samples the current-delay filter keeps (RFC 6817's CURRENT_FILTER).
	recentSamples = 8
	// filterBursts sets the current-delay filter's span: the minimum over samples from the last filterBursts burst
	// drain times (Burst/rate). At low rates one burst of ours queues for longer than the target, and a probe that
	// lands behind it would read our own burst as a standing queue; at high rates the span is below one probe
	// interval, so the filter is just the latest sample and adds no lag to the control loop.
	filterBursts = 3
	// maxSampleGap caps the time one sample may account for, so a pause in probing does not cause a jump.
	maxSampleGap = 100 * time.Millisecond
	// grantLogSize bounds the log of granted bytes: one mark per sample covers a few seconds of RTT.
	grantLogSize = 128
	// estimateSpan is the least time between the two probes the bottleneck estimate compares.
	estimateSpan = 30 * time.Millisecond
	// caIncrease and caDecrease bound how much of the window congestion avoidance adds or sheds per RTT. Our
	// feedback arrives one probe interval plus one RTT late, so a loop faster than this overshoots and oscillates:
	// simulated bottlenecks from 2 to 100 Mbit/s and 20 to 200 ms RTT (congestion_test.go) kept 95-100% of the
	// link with no queue drops at 1/32 and 1/4; at 1/16 the 200 ms path dropped 0.8%, at 1/8 all of them dropped.
	caIncrease = 1.0 / 32
	caDecrease = 1.0 / 4
	// outageLosses consecutive lost probes mean an outage: when probes return, slow start refills the window up to
	// where the first loss left it.
	outageLosses = 3
)

func (c CongestionConfig) withDefaults() CongestionConfig {
	if c.TargetDelay <= 0 {
		c.TargetDelay = 12 * time.Millisecond
	}
	if c.MinRate <= 0 {
		c.MinRate = 32 << 10
	}
	if c.MaxRate <= 0 {
		c.MaxRate = 1 << 30
	}
	if c.MaxRate < c.MinRate {
		c.MaxRate = c.MinRate
	}
	if c.InitialRate <= 0 {
		c.InitialRate = 1 << 20
	}
	c.InitialRate = min(max(c.InitialRate, c.MinRate), c.MaxRate)
	if c.Gain <= 0 {
		c.Gain = 1
	}
	if c.LossBackoff <= 0 || c.LossBackoff >= 1 {
		c.LossBackoff = 0.5
	}
	if c.BaseHistory <= 0 {
		c.BaseHistory = 10 * time.Minute
	}
	if c.Burst <= 0 {
		c.Burst = 4 * utpPacketPayload
	}
	return c
}

// controller is a LEDBAT-style (RFC 6817) delay-based congestion controller that paces instead of clocking on
// acknowledgements, because the uTP window underneath is not ours to change. It keeps a congestion window cwnd
// (bytes) and paces at cwnd / RTT, where RTT is the base delay (floored at rttFloor) plus the measured queuing delay,
// so a growing queue slows the sender at once, before the window itself reacts.
type controller struct {
	cfg CongestionConfig
	now func() time.Time // replaced in tests to drive the controller in virtual time

	mu sync.Mutex
	// Delay measurement (RFC 6817 section 3.4.2).
	baseMins   []time.Duration            // minimum RTT per minute, oldest first; the base delay is their minimum
	baseMinute time.Time                  // start of the newest bucket
	recent     [recentSamples]delaySample // ring of the latest samples
	nRecent    int
	queuing    time.Duration // current queuing delay estimate
	haveSample bool
	lastSample time.Time

	// Window.
	cwnd         float64 // bytes per RTT
	slowStart    bool    // doubling per RTT until a queue shows or cwnd reaches ssthresh
	ssthresh     float64 // where slow start ends after an outage refills the window
	lossRun      int     // probes lost since the last sample
	lastDecrease time.Time
	r            float64 // current pacing rate, bytes/s

	// Pacer (a token bucket kept as a virtual send time) and what it saw since the last sample.
	next    time.Time
	sent    float64 // bytes granted since the last sample
	granted float64 // bytes granted in all
	// grants logs granted at each sample, so the bytes sent between two probes can be looked up later.
	grants  [grantLogSize]grantMark
	nGrants int
}

// grantMark is how many bytes the pacer had granted by a given time.
type grantMark struct {
	at    time.Time
	bytes float64
}

// grantedBy returns the bytes granted by time t, interpolated between marks; false if t is outside the log.
func (c *controller) grantedBy(t time.Time) (float64, bool) {
	n := min(c.nGrants, grantLogSize)
	for k := 1; k < n; k++ {
		newer := c.grants[(c.nGrants-k)%grantLogSize]
		older := c.grants[(c.nGrants-k-1)%grantLogSize]
		if t.Before(older.at) || t.After(newer.at) {
			continue
		}
		span := newer.at.Sub(older.at)
		if span <= 0 {
			return newer.bytes, true
		}
		f := float64(t.Sub(older.at)) / float64(span)
		return older.bytes + f*(newer.bytes-older.bytes), true
	}
	return 0, false
}

// bottleneckRate estimates the bottleneck's rate from how fast the queue grew between two recent probes: the bytes
// sent between their departures went either through the link or into the queue, so
// rate = bytes / (time between departures + growth of the queuing delay). It needs the queue to have grown
// (we were sending faster than the link) and two probes between estimateSpan and four times that apart.
func (c *controller) bottleneckRate() (float64, bool) {
	n := min(c.nRecent, recentSamples)
	if n < 2 {
		return 0, false
	}
	base := c.baseDelay()
	latest := c.recent[(c.nRecent-1)%recentSamples]
	sentI := latest.at.Add(-latest.rtt)
	bytesI, ok := c.grantedBy(sentI)
	if !ok {
		return 0, false
	}
	for k := 2; k <= n; k++ {
		s := c.recent[(c.nRecent-k)%recentSamples]
		sentJ := s.at.Add(-s.rtt)
		if sentI.Sub(sentJ) < estimateSpan {
			continue
		}
		if sentI.Sub(sentJ) > 4*estimateSpan {
			return 0, false // a gap in probing (an outage): the bytes between say nothing about the link
		}
		bytesJ, ok := c.grantedBy(sentJ)
		grow := (latest.rtt - base) - (s.rtt - base)
		span := sentI.Sub(sentJ).Seconds()
		// The senders must have kept the pacer busy (in slow start the rate then was at least an eighth of
		// now); an application sending in dribs would make the link look slow.
		if !ok || grow <= 0 || bytesI-bytesJ < c.r*span/8 {
			return 0, false
		}
		return (bytesI - bytesJ) / (span + grow.Seconds()), true
	}
	return 0, false
}

// delaySample is one RTT sample and when it arrived.
type delaySample struct {
	at  time.Time
	rtt time.Duration
}

func newController(cfg CongestionConfig) *controller {
	cfg = cfg.withDefaults()
	c := &controller{
		cfg:       cfg,
		now:       time.Now,
		ssthresh:  math.Inf(1),
		slowStart: true,
	}
	c.r = cfg.InitialRate
	c.cwnd = cfg.InitialRate * rttFloor.Seconds()
	return c
}

// rate returns the current pacing rate in bytes per second.
func (c *controller) rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r
}

// baseDelay returns the minimum RTT over the base history, or 0 before any sample.
func (c *controller) baseDelay() time.Duration {
	if len(c.baseMins) == 0 {
		return 0
	}
	b := c.baseMins[0]
	for _, m := range c.baseMins[1:] {
		b = min(b, m)
	}
	return b
}

// effectiveRTT is the RTT the window is spread over: base delay (at least rttFloor) plus queuing delay.
func (c *controller) effectiveRTT() time.Duration {
	return max(c.baseDelay(), rttFloor) + c.queuing
}

// updateRate recomputes the pacing rate from the window, clamping both to [MinRate, MaxRate].
func (c *controller) updateRate() {
	rtt := c.effectiveRTT().Seconds()
	c.cwnd = min(max(c.cwnd, c.cfg.MinRate*rtt), c.cfg.MaxRate*rtt)
	c.r = c.cwnd / rtt
}

// onRTTSample feeds the round-trip time of one echoed probe.
func (c *controller) onRTTSample(rtt time.Duration) {
	if rtt <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()

	// Base history: one minimum per minute, BaseHistory worth of minutes.
	if len(c.baseMins) == 0 || now.Sub(c.baseMinute) >= time.Minute {
		c.baseMins = append(c.baseMins, rtt)
		c.baseMinute = now
		if n := int((c.cfg.BaseHistory + time.Minute - 1) / time.Minute); len(c.baseMins) > max(n, 1) {
			c.baseMins = c.baseMins[len(c.baseMins)-max(n, 1):]
		}
	} else {
		c.baseMins[len(c.baseMins)-1] = min(c.baseMins[len(c.baseMins)-1], rtt)
	}
	c.recent[c.nRecent%recentSamples] = delaySample{at: now, rtt: rtt}
	c.nRecent++
	span := time.Duration(filterBursts * float64(c.cfg.Burst) / c.r * float64(time.Second))
	current := rtt
	for _, s := range c.recent[:min(c.nRecent, recentSamples)] {
		if now.Sub(s.at) <= span {
			current = min(current, s.rtt)
		}
	}
	c.queuing = current - c.baseDelay()

	var dt time.Duration
	if c.haveSample {
		dt = min(now.Sub(c.lastSample), maxSampleGap)
	}
	c.haveSample = true
	c.lastSample = now
	c.lossRun = 0
	c.grants[c.nGrants%grantLogSize] = grantMark{at: now, bytes: c.granted}
	c.nGrants++

	// Grow only when the senders used at least a quarter of what the pacer allowed: an application (or a uTP
	// window) that sends less must not build a window it never tested (RFC 7661). A quarter, not all, so the pacer
	// stays well above a bursty sender's average and out of its way on paths with no queue (loopback). Asking
	// whether a wait had to sleep instead would not do: a sender writing bursts beyond the pacer's credit sleeps
	// at any rate.
	allowance := c.r * dt.Seconds()
	limited := allowance > 0 && c.sent >= allowance/4
	c.sent = 0

	rttEff := c.effectiveRTT()
	target := c.cfg.TargetDelay
	step := c.cfg.Gain * dt.Seconds() / rttEff.Seconds() // fraction of an RTT this sample covers, times gain
	if c.slowStart {
		c.checkSlowStartExit()
	}
	switch {
	case c.slowStart:
		// Slow start: double per RTT (at most per sample) until a queue shows (checkSlowStartExit); once one
		// starts to build, grow by only a quarter per RTT, as HyStart++'s conservative slow start does, so the
		// overshoot in the RTT it takes to see the queue stays small. A jittery path that only looks like a
		// building queue is slowed, not stopped.
		growth := 2.0
		if _, growing := c.bottleneckRate(); growing && c.queuing >= target/8 {
			growth = 1.25
		}
		if limited {
			c.cwnd *= math.Pow(growth, min(step, 1))
		}
	default:
		off := float64(target-c.queuing) / float64(target)
		off = min(max(off, -1), 1)
		if off > 0 {
			// Below target: RFC 6817 adds GAIN*off_target MSS per RTT; we add at least that and up to
			// caIncrease of the window, so a fat path far below target is refilled in seconds, not minutes.
			if limited {
				c.cwnd += off * step * max(utpPacketPayload, c.cwnd*caIncrease)
			}
		} else {
			// Above target: shed up to caDecrease of the window per RTT, in proportion to the excess.
			c.cwnd += off * min(step, 1) * c.cwnd * caDecrease
		}
	}
	c.updateRate()
}

// checkSlowStartExit ends slow start once the queue reaches half the target (or cwnd reaches ssthresh). Doubling
// per RTT overshoots the link by up to twice its rate by the time the queue shows in an echo, an RTT later, so the
// window then drops to what the bottleneck, estimated from the queue's growth, drains in one base RTT (but at most
// by half): the pacing rate stays below the link's while the queue lasts, and the queue empties instead of
// overflowing. Leaving earlier (a quarter of the target) overflowed shallow queues less often, but host and path
// jitter of a few milliseconds then ended slow start on long paths at a fraction of their rate.
func (c *controller) checkSlowStartExit() {
	target := c.cfg.TargetDelay
	if c.cwnd < c.ssthresh && c.steadyQueuing() < target/2 {
		return
	}
	est, growing := c.bottleneckRate()
	c.slowStart = false
	if growing && est < c.r {
		// No lower than half the rate: the rate an RTT ago, which showed no queue, is a floor for the link's,
		// and a jittery path can make the estimate read low.
		c.cwnd = max(est, c.r/2) * max(c.baseDelay(), rttFloor).Seconds()
	}
}

// steadyQueuing is the queuing delay the last two samples agree on (their minimum), so one jittered echo does not
// end slow start.
func (c *controller) steadyQueuing() time.Duration {
	if c.nRecent < 2 {
		return 0
	}
	base := c.baseDelay()
	a := c.recent[(c.nRecent-1)%recentSamples].rtt
	b := c.recent[(c.nRecent-2)%recentSamples].rtt
	return max(min(a, b)-base, 0)
}

// onProbeLost reports a probe whose echo never came. The window is cut at most once per RTT; the first loss of a
// run sets ssthresh so that, when probes come back (after an outage, say), slow start refills the window quickly.
func (c *controller) onProbeLost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.lossRun++
	if !c.lastDecrease.IsZero() && now.Sub(c.lastDecrease) < c.effectiveRTT() {
		return
	}
	c.lastDecrease = now
	backoff := c.cfg.LossBackoff
	if c.queuing < c.cfg.TargetDelay/2 {
		// No standing queue: most likely random loss, not our queue overflowing.
		backoff = 1 - (1-backoff)/4
	}
	c.cwnd *= backoff
	switch {
	case c.lossRun == 1:
		c.slowStart = false
		c.ssthresh = c.cwnd
	case c.lossRun >= outageLosses:
		// Many probes in a row lost: an outage, not a queue. Refill by slow start once probes come back.
		c.slowStart = true
	}
	c.updateRate()
}

// wait blocks until n more bytes may be sent at the current rate, or ctx ends. Callers reserve their slot in
// arrival order, so concurrent streams share the rate.
func (c *controller) wait(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := c.reserve(n)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reserve books n bytes on the pacer's timeline and returns how long the caller must wait before sending them.
// The timeline may lag the clock by the burst credit, so up to Burst bytes (or timerSlack worth) go out at once.
func (c *controller) reserve(n int) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	credit := max(time.Duration(float64(c.cfg.Burst)/c.r*float64(time.Second)), timerSlack)
	if c.next.Before(now.Add(-credit)) {
		c.next = now.Add(-credit)
	}
	c.next = c.next.Add(time.Duration(float64(n) / c.r * float64(time.Second)))
	c.sent += float64(n)
	c.granted += float64(n)
	return c.next.Sub(now)
}
