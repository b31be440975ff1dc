package utp

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// virtualClock drives a controller in simulated time.
type virtualClock struct{ t time.Time }

func (v *virtualClock) now() time.Time { return v.t }

func newVirtualController(cfg CongestionConfig) (*controller, *virtualClock) {
	clk := &virtualClock{t: time.Unix(1_000_000, 0)}
	c := newController(cfg)
	c.now = clk.now
	return c, clk
}

// bottleneck describes a simulated path: a link of Rate bytes/s behind a tail-drop queue of Queue bytes, Delay
// one-way propagation delay each way, and up to Jitter of extra random delay on each echo.
type bottleneck struct {
	Rate   float64
	Queue  float64
	Delay  time.Duration
	Jitter time.Duration
	Loss   float64 // random loss of packets entering the queue
}

// simResult is what a greedy sender paced by the controller achieved through the bottleneck after warm-up.
type simResult struct {
	goodput   float64 // bytes/s delivered by the link
	dropRatio float64 // packets dropped at the queue / packets offered
	meanQueue time.Duration
	maxQueue  time.Duration
	finalRate float64
}

// simulate runs a greedy sender through b for total virtual time, sending probes every 20 ms as the core does and
// feeding their echoes (or losses, after max(4*srtt, 200 ms)) to the controller. Statistics skip the first warm.
func simulate(t *testing.T, c *controller, clk *virtualClock, b bottleneck, total, warm time.Duration, seed uint64) simResult {
	t.Helper()
	const (
		step          = 100 * time.Microsecond
		probeInterval = 20 * time.Millisecond
		segment       = 4 * utpPacketPayload
	)
	rng := rand.New(rand.NewPCG(seed, 1))
	type event struct {
		at  time.Time
		rtt time.Duration // > 0: echo; 0: loss
	}
	var (
		start              = clk.t
		queue              float64 // bytes waiting at the bottleneck
		releaseAt          = clk.t // when the next segment leaves the pacer
		nextProbe          = clk.t
		events             []event
		srtt               time.Duration
		delivered, offered float64
		dropped            float64
		queueSum           time.Duration
		queueMax           time.Duration
		steps              int
	)
	enqueue := func(size float64) bool {
		if rng.Float64() < b.Loss {
			return false
		}
		if queue+size > b.Queue {
			return false
		}
		queue += size
		return true
	}
	for clk.t.Sub(start) < total {
		measuring := clk.t.Sub(start) >= warm
		// Sender: greedy, one segment (4 packets) per pacer grant.
		for !releaseAt.After(clk.t) {
			for range 4 {
				ok := enqueue(utpPacketPayload)
				if measuring {
					offered++
					if !ok {
						dropped++
					}
				}
			}
			releaseAt = clk.t.Add(max(c.reserve(segment), 0))
		}
		// Probes bypass the pacer but share the queue.
		if !clk.t.Before(nextProbe) {
			nextProbe = nextProbe.Add(probeInterval)
			qdelay := time.Duration(queue / b.Rate * float64(time.Second))
			if enqueue(64) {
				jitter := time.Duration(0)
				if b.Jitter > 0 {
					jitter = time.Duration(rng.Int64N(int64(b.Jitter)))
				}
				rtt := 2*b.Delay + qdelay + jitter + 20*time.Microsecond
				events = append(events, event{at: clk.t.Add(rtt), rtt: rtt})
			} else {
				events = append(events, event{at: clk.t.Add(max(4*srtt, 200*time.Millisecond))})
			}
		}
		for i := 0; i < len(events); {
			if events[i].at.After(clk.t) {
				i++
				continue
			}
			if e := events[i]; e.rtt > 0 {
				srtt = (7*srtt + e.rtt) / 8
				if srtt == 0 {
					srtt = e.rtt
				}
				c.onRTTSample(e.rtt)
			} else {
				c.onProbeLost()
			}
			events = append(events[:i], events[i+1:]...)
		}
		// Link drains the queue.
		out := min(queue, b.Rate*step.Seconds())
		queue -= out
		if measuring {
			delivered += out
			qd := time.Duration(queue / b.Rate * float64(time.Second))
			queueSum += qd
			queueMax = max(queueMax, qd)
			steps++
		}
		clk.t = clk.t.Add(step)
	}
	return simResult{
		goodput:   delivered / (total - warm).Seconds(),
		dropRatio: dropped / max(offered, 1),
		meanQueue: queueSum / time.Duration(max(steps, 1)),
		maxQueue:  queueMax,
		finalRate: c.rate(),
	}
}

func TestControllerHoldsBottleneckNearTarget(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		b    bottleneck
	}{
		{"20Mbit-64KB-20ms", bottleneck{Rate: 2.5e6, Queue: 64 << 10, Delay: 20 * time.Millisecond}},
		{"20Mbit-64KB-5ms-jitter", bottleneck{Rate: 2.5e6, Queue: 64 << 10, Delay: 5 * time.Millisecond, Jitter: 3 * time.Millisecond}},
		{"8Mbit-32KB-50ms", bottleneck{Rate: 1e6, Queue: 32 << 10, Delay: 50 * time.Millisecond}},
		{"100Mbit-256KB-10ms", bottleneck{Rate: 12.5e6, Queue: 256 << 10, Delay: 10 * time.Millisecond}},
		{"2Mbit-16KB-30ms", bottleneck{Rate: 250e3, Queue: 16 << 10, Delay: 30 * time.Millisecond}},
		{"20Mbit-64KB-50ms", bottleneck{Rate: 2.5e6, Queue: 64 << 10, Delay: 50 * time.Millisecond}},
		{"50Mbit-128KB-100ms", bottleneck{Rate: 6.25e6, Queue: 128 << 10, Delay: 100 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, clk := newVirtualController(CongestionConfig{})
			r := simulate(t, c, clk, tc.b, 30*time.Second, 5*time.Second, 1)
			t.Logf("goodput %.2f MB/s (%.1f%% of link), drops %.3f%%, queue mean %v max %v, rate %.2f MB/s",
				r.goodput/1e6, 100*r.goodput/tc.b.Rate, 100*r.dropRatio, r.meanQueue, r.maxQueue, r.finalRate/1e6)
			if r.goodput < 0.8*tc.b.Rate {
				t.Errorf("goodput %.0f B/s < 80%% of link rate %.0f", r.goodput, tc.b.Rate)
			}
			if r.dropRatio >= 0.01 {
				t.Errorf("%.2f%% of packets dropped at the queue, want < 1%%", 100*r.dropRatio)
			}
			target := c.cfg.TargetDelay
			if r.meanQueue > 2*target {
				t.Errorf("mean queuing delay %v, want near the %v target", r.meanQueue, target)
			}
		})
	}
}

func TestControllerSlowStartDoesNotOverflow(t *testing.T) {
	t.Parallel()
	// From a cold start, counting the start: slow start overshoots for about an RTT before the queue shows in an
	// echo; leaving it must bring the rate under the link's (estimated from the queue's growth) before the queue
	// overflows for long. Raw anacrolix/utp loses about half its packets at such queues.
	for _, tc := range []struct {
		name     string
		b        bottleneck
		maxDrops float64
	}{
		{"20Mbit-64KB-20ms", bottleneck{Rate: 2.5e6, Queue: 64 << 10, Delay: 20 * time.Millisecond}, 0.03},
		{"20Mbit-64KB-5ms-jitter", bottleneck{Rate: 2.5e6, Queue: 64 << 10, Delay: 5 * time.Millisecond, Jitter: 3 * time.Millisecond}, 0.03},
		{"8Mbit-32KB-50ms", bottleneck{Rate: 1e6, Queue: 32 << 10, Delay: 50 * time.Millisecond}, 0.03},
		{"100Mbit-256KB-10ms", bottleneck{Rate: 12.5e6, Queue: 256 << 10, Delay: 10 * time.Millisecond}, 0.03},
		{"20Mbit-64KB-50ms", bottleneck{Rate: 2.5e6, Queue: 64 << 10, Delay: 50 * time.Millisecond}, 0.04},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, clk := newVirtualController(CongestionConfig{})
			r := simulate(t, c, clk, tc.b, 4*time.Second, 0, 1)
			t.Logf("first 4 s: goodput %.1f%% of link, %.2f%% dropped at the queue", 100*r.goodput/tc.b.Rate, 100*r.dropRatio)
			if r.dropRatio > tc.maxDrops {
				t.Errorf("%.2f%% of packets dropped at the queue in the first 4 s, want at most %.0f%%", 100*r.dropRatio, 100*tc.maxDrops)
			}
			if r.goodput < 0.75*tc.b.Rate {
				t.Errorf("goodput %.0f B/s in the first 4 s, want >= 75%% of %.0f", r.goodput, tc.b.Rate)
			}
		})
	}
}

func TestControllerEstimatesBottleneckRate(t *testing.T) {
	t.Parallel()
	c, clk := newVirtualController(CongestionConfig{InitialRate: 4e6})
	// A sender at 4 MB/s into a 2 MB/s link with a 30 ms base RTT: every 20 ms it sends 80 kB, of which 40 kB
	// pass and 40 kB queue, so each probe (one per 20 ms) meets 20 ms more queuing delay than the one before.
	const rate, link, base = 4e6, 2e6, 30 * time.Millisecond
	t0 := clk.t
	c.mu.Lock()
	defer c.mu.Unlock()
	c.baseMins = []time.Duration{base}
	for ms := 0; ms <= 200; ms += 10 {
		at := t0.Add(time.Duration(ms) * time.Millisecond)
		c.grants[c.nGrants%grantLogSize] = grantMark{at: at, bytes: rate * at.Sub(t0).Seconds()}
		c.nGrants++
	}
	for i := range 4 {
		sent := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		rtt := base + time.Duration(i)*20*time.Millisecond
		c.recent[c.nRecent%recentSamples] = delaySample{at: sent.Add(rtt), rtt: rtt}
		c.nRecent++
	}
	got, ok := c.bottleneckRate()
	if !ok || math.Abs(got-link)/link > 0.01 {
		t.Fatalf("bottleneck estimate %.0f B/s (ok=%v), want %.0f", got, ok, link)
	}
	// A queue that does not grow gives no estimate.
	c.recent[(c.nRecent-1)%recentSamples].rtt = base
	if got, ok := c.bottleneckRate(); ok {
		t.Fatalf("estimate %.0f B/s from a queue that shrank, want none", got)
	}
}

func TestControllerToleratesRandomLoss(t *testing.T) {
	t.Parallel()
	// 2% random loss on top of the bottleneck: probe losses without a standing queue must not halve the rate.
	b := bottleneck{Rate: 2.5e6, Queue: 64 << 10, Delay: 20 * time.Millisecond, Loss: 0.02}
	c, clk := newVirtualController(CongestionConfig{})
	r := simulate(t, c, clk, b, 30*time.Second, 5*time.Second, 5)
	t.Logf("goodput %.2f MB/s (%.1f%% of link), %.2f%% of packets lost", r.goodput/1e6, 100*r.goodput/b.Rate, 100*r.dropRatio)
	if r.goodput < 0.7*b.Rate {
		t.Fatalf("goodput %.0f B/s with 2%% random loss, want >= 70%% of %.0f", r.goodput, b.Rate)
	}
}

func TestControllerFastStartOnLoopback(t *testing.T) {
	t.Parallel()
	c, clk := newVirtualController(CongestionConfig{})
	// Loopback: RTT 50-300 µs, nothing queues; the sender always has more to send than the pacer allows.
	rng := rand.New(rand.NewPCG(2, 2))
	var elapsed time.Duration
	for c.rate() < 500e6 {
		for range int(c.rate() * 0.020 / (4 * utpPacketPayload)) {
			c.reserve(4 * utpPacketPayload)
		}
		clk.t = clk.t.Add(20 * time.Millisecond)
		elapsed += 20 * time.Millisecond
		c.onRTTSample(50*time.Microsecond + time.Duration(rng.Int64N(int64(250*time.Microsecond))))
		if elapsed > time.Second {
			t.Fatalf("rate %.1f MB/s after %v, want 500 MB/s within 1 s", c.rate()/1e6, elapsed)
		}
	}
	t.Logf("reached %.0f MB/s after %v", c.rate()/1e6, elapsed)
}

func TestControllerDoesNotGrowWhenApplicationLimited(t *testing.T) {
	t.Parallel()
	c, clk := newVirtualController(CongestionConfig{})
	before := c.rate()
	for range 100 {
		c.reserve(utpPacketPayload) // a trickle: far below the allowance
		clk.t = clk.t.Add(20 * time.Millisecond)
		c.onRTTSample(time.Millisecond)
	}
	if got := c.rate(); got > before*1.01 {
		t.Fatalf("rate grew from %.0f to %.0f B/s while the sender used under 10%% of it", before, got)
	}
}

func TestControllerBacksOffOnLoss(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		queuing time.Duration
		maxCut  float64 // rate after / rate before must be at most this
		minCut  float64
	}{
		{"congestive", 20 * time.Millisecond, 0.5 * 30 / 30, 0},
		{"random", 0, 0.9, 0.85},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, clk := newVirtualController(CongestionConfig{InitialRate: 4e6})
			// Establish a 30 ms base, then (for the congestive case) a standing queue.
			c.onRTTSample(30 * time.Millisecond)
			for range 3 {
				clk.t = clk.t.Add(20 * time.Millisecond)
				c.onRTTSample(30*time.Millisecond + tc.queuing)
			}
			before := c.rate()
			c.onProbeLost()
			after := c.rate()
			if ratio := after / before; ratio > tc.maxCut+1e-9 || ratio < tc.minCut {
				t.Fatalf("rate %.0f -> %.0f (x%.3f), want x in [%.2f, %.2f]", before, after, ratio, tc.minCut, tc.maxCut)
			}
			// A second loss within the same RTT is the same congestion event.
			c.onProbeLost()
			if again := c.rate(); again != after {
				t.Fatalf("second loss within one RTT cut the rate again: %.0f -> %.0f", after, again)
			}
			// After an RTT it counts again, down to MinRate and no further.
			for range 200 {
				clk.t = clk.t.Add(200 * time.Millisecond)
				c.onProbeLost()
			}
			if got, want := c.rate(), c.cfg.MinRate; got != want {
				t.Fatalf("rate after a long run of losses = %.0f, want MinRate %.0f", got, want)
			}
		})
	}
}

func TestControllerRecoversAfterOutage(t *testing.T) {
	t.Parallel()
	c, clk := newVirtualController(CongestionConfig{})
	b := bottleneck{Rate: 2.5e6, Queue: 64 << 10, Delay: 20 * time.Millisecond}
	simulate(t, c, clk, b, 10*time.Second, 0, 3)
	good := c.rate()
	// 5 s outage: every probe is lost.
	for range 250 {
		clk.t = clk.t.Add(20 * time.Millisecond)
		c.onProbeLost()
	}
	if c.rate() > 2*c.cfg.MinRate {
		t.Fatalf("rate %.0f after a 5 s outage, want near MinRate", c.rate())
	}
	r := simulate(t, c, clk, b, 4*time.Second, time.Second, 4)
	t.Logf("before outage %.2f MB/s; 1-4 s after it: goodput %.2f MB/s, drops %.3f%%", good/1e6, r.goodput/1e6, 100*r.dropRatio)
	if r.goodput < 0.8*b.Rate {
		t.Fatalf("goodput %.0f B/s 1-4 s after the outage, want >= 80%% of %.0f", r.goodput, b.Rate)
	}
}

func TestControllerBaseDelayHistory(t *testing.T) {
	t.Parallel()
	c, clk := newVirtualController(CongestionConfig{BaseHistory: 3 * time.Minute})
	c.onRTTSample(10 * time.Millisecond)
	// The route changes to a longer one: until the old minimum ages out, 30 ms reads as 20 ms of queue.
	for i := range 5 * 60 {
		clk.t = clk.t.Add(time.Second)
		c.onRTTSample(30 * time.Millisecond)
		c.mu.Lock()
		q := c.queuing
		c.mu.Unlock()
		switch {
		case i < 2*60 && q != 20*time.Millisecond:
			t.Fatalf("after %d s: queuing %v, want 20ms while the 10 ms base is remembered", i+1, q)
		case i >= 4*60 && q != 0:
			t.Fatalf("after %d s: queuing %v, want 0 once the old base aged out", i+1, q)
		}
	}
}

func TestControllerPacesAtRate(t *testing.T) {
	t.Parallel()
	c, clk := newVirtualController(CongestionConfig{InitialRate: 1e6})
	// Back-to-back reservations: the first Burst bytes go at once, then each waits its share.
	var sent int
	var last time.Duration
	for sent < 1e6 {
		last = c.reserve(utpPacketPayload)
		sent += utpPacketPayload
	}
	wantLast := time.Duration(float64(sent-c.cfg.Burst) / 1e6 * float64(time.Second))
	if diff := last - wantLast; diff < -time.Millisecond || diff > time.Millisecond {
		t.Fatalf("the %d-th byte waits %v, want %v (1 MB/s after a %d B burst)", sent, last, wantLast, c.cfg.Burst)
	}
	// Idle time earns only one burst of credit.
	clk.t = clk.t.Add(time.Hour)
	if d := c.reserve(c.cfg.Burst); d > 0 {
		t.Fatalf("a burst after idling waits %v, want 0", d)
	}
	if d := c.reserve(utpPacketPayload); d <= 0 {
		t.Fatalf("a packet right after a full burst waits %v, want > 0", d)
	}
}

func TestControllerWaitHonoursContext(t *testing.T) {
	t.Parallel()
	c := newController(CongestionConfig{InitialRate: 1000, MinRate: 1000})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// 1 MB at 1 kB/s would take 1000 s.
	err := c.wait(ctx, 1e6)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait = %v, want context.DeadlineExceeded", err)
	}
	if err := c.wait(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on an ended context = %v, want context.DeadlineExceeded", err)
	}
}

func TestCongestionConfigDefaults(t *testing.T) {
	t.Parallel()
	got := CongestionConfig{}.withDefaults()
	want := CongestionConfig{
		TargetDelay: 12 * time.Millisecond, InitialRate: 1 << 20, MinRate: 32 << 10, MaxRate: 1 << 30,
		Gain: 1, LossBackoff: 0.5, BaseHistory: 10 * time.Minute, Burst: 4 * utpPacketPayload,
	}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	// Inconsistent limits are repaired, not trusted.
	odd := CongestionConfig{MinRate: 1e6, MaxRate: 1e5, InitialRate: 5}.withDefaults()
	if odd.MaxRate != 1e6 || odd.InitialRate != 1e6 {
		t.Fatalf("MinRate 1e6, MaxRate 1e5, InitialRate 5 became %+v", odd)
	}
}

func BenchmarkControllerReserve(b *testing.B) {
	c := newController(CongestionConfig{MaxRate: 1e12, InitialRate: 1e12})
	for b.Loop() {
		c.reserve(4 * utpPacketPayload)
	}
}

func BenchmarkControllerSample(b *testing.B) {
	c := newController(CongestionConfig{})
	var i int
	for b.Loop() {
		i++
		c.onRTTSample(time.Duration(1000+i%100) * time.Microsecond)
	}
}
