package congestion

import (
	"slices"
	"time"
)

// LEDBAT's constants (RFC 6817, BEP 29).
const (
	// DefaultLEDBATTarget is BEP 29's target queuing delay.
	DefaultLEDBATTarget = 100 * time.Millisecond
	// The base delay is the minimum over ten minutes (RFC 6817's
	// BASE_HISTORY), kept as the minima of 20-second buckets: short enough
	// buckets that the clock drift between them is small and that three are
	// complete, for a first estimate of the drift, within a minute.
	ledbatBaseBuckets  = 30
	ledbatBucketLength = 20 * time.Second
	// ledbatCurrentFilter is CURRENT_FILTER: the current delay is the
	// minimum of this many recent samples, which drops the odd delayed one.
	ledbatCurrentFilter = 4
	// ledbatMaxDrift bounds the clock drift the base delay corrects for, in
	// delay per second of time: 1000 ppm is ten times a poor crystal's.
	ledbatMaxDrift = 1e-3
)

// LEDBATConfig tunes NewLEDBAT. The zero value selects the defaults
// documented on each field.
type LEDBATConfig struct {
	// Target is the queuing delay the flow aims to add. Default 100 ms.
	Target time.Duration
	// Gain scales how fast the window moves toward the target. Default 1.
	Gain float64
	// InitialWindowPackets is the window before any feedback. Default 2.
	InitialWindowPackets int
	// MinWindowPackets is the least window after any reduction. Default 2.
	MinWindowPackets int
	// MaxWindow caps the window, in bytes. Default 64 MiB.
	MaxWindow int
}

func (c LEDBATConfig) withDefaults() LEDBATConfig {
	if c.Target <= 0 {
		c.Target = DefaultLEDBATTarget
	}
	if c.Gain <= 0 {
		c.Gain = 1
	}
	if c.InitialWindowPackets <= 0 {
		c.InitialWindowPackets = 2
	}
	if c.MinWindowPackets <= 0 {
		c.MinWindowPackets = 2
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = 64 << 20
	}
	return c
}

// baseDelay is the base delay history of RFC 6817: the minimum one-way delay
// over the last ten minutes, by 20-second buckets. The one-way delay is a
// difference of two hosts' clocks, so it drifts with the clocks' rates; a
// minimum from ten minutes ago is then too low by ten minutes of drift, and
// every later sample would read as queuing. The drift cannot be seen in the
// one-way delay alone, since LEDBAT holds that steady by shrinking its queue
// as the clocks part. But the RTT, timed on one clock, does not drift, and
// shares the forward path's queue with the one-way delay: their difference
// changes only with the drift (and the return path's queue). So the history
// keeps each bucket's least difference too, takes the median slope between
// consecutive buckets' (the median, so a bucket with a queue on the return
// path does not count) as the drift, and ages each minimum by it from when
// it was seen.
//
// Times are kept as offsets from the first sample rather than as time.Time
// (24 bytes each), which halves the history every connection carries.
type baseDelay struct {
	epoch time.Time                        // the zero of minAt and start
	mins  [ledbatBaseBuckets]time.Duration // least one-way delay
	minAt [ledbatBaseBuckets]time.Duration // when it was seen
	skews [ledbatBaseBuckets]time.Duration // least one-way delay less RTT
	start [ledbatBaseBuckets]time.Duration
	n     int // buckets in use; the newest is index n-1
	drift float64
}

// at is now as an offset from the epoch, which the first call sets.
func (h *baseDelay) at(now time.Time) time.Duration {
	if h.epoch.IsZero() {
		h.epoch = now
	}
	return now.Sub(h.epoch)
}

// add takes a one-way delay sample d with the RTT sample rtt of the same
// ACK.
func (h *baseDelay) add(now time.Time, d, rtt time.Duration) {
	skew := d - rtt
	t := h.at(now)
	if i := h.n - 1; h.n > 0 && t-h.start[i] < ledbatBucketLength {
		if d < h.mins[i] {
			h.mins[i], h.minAt[i] = d, t
		}
		h.skews[i] = min(h.skews[i], skew)
		return
	}
	if h.n == ledbatBaseBuckets {
		copy(h.mins[:], h.mins[1:])
		copy(h.minAt[:], h.minAt[1:])
		copy(h.skews[:], h.skews[1:])
		copy(h.start[:], h.start[1:])
		h.n--
	}
	h.mins[h.n], h.minAt[h.n], h.skews[h.n], h.start[h.n] = d, t, skew, t
	h.n++
	h.drift = h.estimateDrift()
}

// estimateDrift is the median slope between consecutive complete buckets'
// least skews, in delay per second; 0 until three buckets are complete.
func (h *baseDelay) estimateDrift() float64 {
	complete := h.n - 1
	if complete < 3 {
		return 0
	}
	var slopes [ledbatBaseBuckets]float64
	for i := 1; i < complete; i++ {
		dt := (h.start[i] - h.start[i-1]).Seconds()
		slopes[i-1] = float64(h.skews[i]-h.skews[i-1]) / float64(time.Second) / dt
	}
	s := slopes[:complete-1]
	slices.Sort(s)
	return min(max(s[len(s)/2], -ledbatMaxDrift), ledbatMaxDrift)
}

// get is the base delay at now.
func (h *baseDelay) get(now time.Time) time.Duration {
	base := time.Duration(1<<63 - 1)
	t := now.Sub(h.epoch)
	for i := 0; i < h.n; i++ {
		aged := h.mins[i] + time.Duration(h.drift*float64(t-h.minAt[i]))
		base = min(base, aged)
	}
	return base
}

// ledbat is RFC 6817's controller with BEP 29's target, paced like the
// others. It grows by at most a packet per RTT below the target and, as
// LEDBAT++ does, shrinks multiplicatively above it, so it yields to a
// loss-based flow within a few round trips instead of holding its share.
type ledbat struct {
	cfg LEDBATConfig
	mss int

	cwnd      float64
	slowStart bool

	base    baseDelay
	current [ledbatCurrentFilter]time.Duration
	cur     int // samples in current, up to ledbatCurrentFilter
	next    int // where the next sample goes

	recovery recovery
	sentAny  bool // a packet has left: the initial window no longer follows the size
	srtt     time.Duration
	pacer    pacer
}

// NewLEDBAT returns a LEDBAT controller (RFC 6817, with BEP 29's 100 ms
// target) for background transfers: it keeps the one-way queuing delay it
// adds near the target and backs off as soon as other traffic builds a queue.
// It is not the default because a delay-based controller cannot tell the
// delay a busy CPU adds (a descheduled sender or receiver) from a queue, and
// slows down for it; and a queue shallower than the target never reaches it,
// so on such a path LEDBAT backs off only on loss, like Reno.
func NewLEDBAT(cfg LEDBATConfig) Controller {
	cfg = cfg.withDefaults()
	l := &ledbat{cfg: cfg, mss: DefaultMaxDatagramSize, slowStart: true}
	l.cwnd = float64(cfg.InitialWindowPackets * l.mss)
	return l
}

func (l *ledbat) minWindow() float64 { return float64(l.cfg.MinWindowPackets * l.mss) }

func (l *ledbat) OnPacketSent(now time.Time, _, size int) {
	l.sentAny = true
	l.pacer.sent(now, l.pacingRate(), size, l.mss)
}

func (l *ledbat) OnAck(now time.Time, ackedBytes, priorInFlight int, rtt *RTTStats, delay time.Duration) {
	l.srtt = rtt.SmoothedRTT()
	if ackedBytes <= 0 {
		return
	}
	queuing, ok := l.queuingDelay(now, rtt, delay)
	if !ok || l.recovery.acksOld(now, rtt) {
		return
	}
	target := l.cfg.Target
	mss := float64(l.mss)
	if l.slowStart {
		if queuing < target/2 {
			l.cwnd += float64(ackedBytes)
			l.cwnd = l.limit(l.cwnd, priorInFlight)
			return
		}
		l.slowStart = false
	}
	acked := float64(ackedBytes) / mss
	w := l.cwnd / mss
	if offTarget := float64(target-queuing) / float64(target); offTarget >= 0 {
		w += l.cfg.Gain * offTarget * acked / w
	} else {
		// Above the target: shed in proportion to the excess, up to half
		// the window per round trip.
		w += max(l.cfg.Gain*offTarget*w, -w/2) * acked / w
	}
	l.cwnd = l.limit(w*mss, priorInFlight)
}

// limit bounds a new window: no more than a packet above what was in flight
// (RFC 6817's ALLOWED_INCREASE, so an idle window does not grow), and within
// the minimum and maximum.
func (l *ledbat) limit(w float64, priorInFlight int) float64 {
	w = min(w, max(float64(priorInFlight+l.mss), l.cwnd))
	return min(max(w, l.minWindow()), float64(l.cfg.MaxWindow))
}

// queuingDelay is the current delay less the base: from the one-way delay
// samples when the engine has them, else from the RTT (which also counts the
// return path's queue).
func (l *ledbat) queuingDelay(now time.Time, rtt *RTTStats, delay time.Duration) (time.Duration, bool) {
	sample := delay
	if sample < 0 {
		sample = rtt.LatestRTT()
		if sample <= 0 {
			return 0, false
		}
	}
	l.base.add(now, sample, rtt.LatestRTT())
	l.current[l.next] = sample
	l.next = (l.next + 1) % ledbatCurrentFilter
	l.cur = min(l.cur+1, ledbatCurrentFilter)
	current := l.current[0]
	for _, d := range l.current[1:l.cur] {
		current = min(current, d)
	}
	return max(current-l.base.get(now), 0), true
}

// OnLoss halves the window, once per round trip.
func (l *ledbat) OnLoss(now, sentTime time.Time, _, _ int) {
	if !l.recovery.newEvent(sentTime) {
		return
	}
	l.recovery.cut(now)
	l.slowStart = false
	l.cwnd = max(l.cwnd/2, l.minWindow())
}

// OnRetransmissionTimeout drops the window to the minimum (RFC 6817 section
// 2.4.2).
func (l *ledbat) OnRetransmissionTimeout(now time.Time) {
	l.recovery.cut(now)
	l.slowStart = false
	l.cwnd = l.minWindow()
}

func (l *ledbat) CongestionWindow() int { return int(l.cwnd) }

func (l *ledbat) PacingDelay(now time.Time, size int, leeway time.Duration) time.Duration {
	return l.pacer.delay(now, l.pacingRate(), size, leeway)
}

func (l *ledbat) pacingRate() float64 { return windowPacingRate(l.cwnd, l.srtt, l.slowStart) }

func (l *ledbat) SetMaxDatagramSize(size int) {
	if size <= 0 {
		return
	}
	l.mss = size
	l.cwnd = resizedWindow(l.cwnd, l.sentAny, l.cfg.InitialWindowPackets, l.cfg.MinWindowPackets, size, l.cfg.MaxWindow)
}

func (l *ledbat) InSlowStart() bool { return l.slowStart }
