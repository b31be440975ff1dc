package congestion

import (
	"math"
	"time"
)

// DefaultMaxDatagramSize is the packet size a controller assumes until the
// engine calls SetMaxDatagramSize.
const DefaultMaxDatagramSize = 1200

// CUBIC's constants (RFC 9438).
const (
	cubicC    = 0.4 // scales the cubic function, in segments per second cubed
	cubicBeta = 0.7 // the multiplicative decrease factor
	// cubicAlpha is the Reno-friendly additive increase, in segments per
	// round trip, that makes CUBIC as fair as Reno with beta 0.7.
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)
)

// Pacing gains of the window-based controllers (windowPacingRate).
const (
	pacingGainSlowStart = 2.0
	pacingGainAvoidance = 1.25
)

// CubicConfig tunes NewCubic. The zero value selects the defaults documented
// on each field.
type CubicConfig struct {
	// InitialWindowPackets is the window before any feedback. Default 10
	// (RFC 6928).
	InitialWindowPackets int
	// MinWindowPackets is the least window after any reduction. Default 2.
	MinWindowPackets int
	// MaxWindow caps the window, in bytes. Default 64 MiB.
	MaxWindow int
	// DisableHyStart leaves slow start only on loss, as classic TCP does,
	// instead of when HyStart++ sees the RTT grow.
	DisableHyStart bool
}

func (c CubicConfig) withDefaults() CubicConfig {
	if c.InitialWindowPackets <= 0 {
		c.InitialWindowPackets = 10
	}
	if c.MinWindowPackets <= 0 {
		c.MinWindowPackets = 2
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = 64 << 20
	}
	return c
}

// cubic is CUBIC (RFC 9438) with HyStart++ (RFC 9406) and pacing. Windows are
// in bytes; the cubic function works in segments of mss bytes.
type cubic struct {
	cfg CubicConfig
	mss int

	cwnd     float64 // bytes
	ssthresh float64 // bytes; +Inf until the first reduction

	// The congestion avoidance epoch: it starts at the first ACK after a
	// reduction.
	epochStart time.Time
	wMax       float64 // window before the last reduction, bytes
	k          float64 // seconds until the cubic function reaches wMax
	wEst       float64 // the Reno-friendly estimate, bytes

	recovery recovery
	// afterRTO is set from a retransmission timeout to the next ACK, so that
	// backed-off timeouts in a row reduce ssthresh only once.
	afterRTO bool

	sentAny bool // a packet has left: the initial window no longer follows the size
	srtt    time.Duration
	lastAck time.Time
	rounds  roundCounter
	hystart hystart
	pacer   pacer
}

// NewCubic returns a CUBIC controller (RFC 9438: cubic growth, the
// Reno-friendly region, fast convergence) that leaves slow start with
// HyStart++ (RFC 9406) and paces at 1.25 times its window per smoothed RTT (2
// times in slow start).
func NewCubic(cfg CubicConfig) Controller {
	cfg = cfg.withDefaults()
	c := &cubic{cfg: cfg, mss: DefaultMaxDatagramSize, ssthresh: math.Inf(1)}
	c.cwnd = float64(cfg.InitialWindowPackets * c.mss)
	c.hystart.reset()
	return c
}

func (c *cubic) minWindow() float64 { return float64(c.cfg.MinWindowPackets * c.mss) }

func (c *cubic) OnPacketSent(now time.Time, bytesInFlight, size int) {
	c.sentAny = true
	if bytesInFlight == 0 && !c.epochStart.IsZero() && !c.lastAck.IsZero() {
		// Restarting after idle: the cubic function must not count the idle
		// time as growth it has earned (RFC 9438 section 5.8).
		if idle := now.Sub(c.lastAck); idle > 0 {
			c.epochStart = c.epochStart.Add(idle)
		}
	}
	c.pacer.sent(now, c.pacingRate(), size, c.mss)
}

func (c *cubic) OnAck(now time.Time, ackedBytes, priorInFlight int, rtt *RTTStats, _ time.Duration) {
	c.srtt = rtt.SmoothedRTT()
	c.lastAck = now
	c.afterRTO = false
	roundEnded := c.rounds.onDone(ackedBytes, max(priorInFlight-ackedBytes, 0))
	if ackedBytes <= 0 {
		return
	}
	if c.recovery.acksOld(now, rtt) || !c.cwndLimited(priorInFlight) {
		return
	}
	if c.InSlowStart() {
		divisor, exit := 1, false
		if !c.cfg.DisableHyStart {
			divisor, exit = c.hystart.onAck(roundEnded, rtt.LatestRTT())
		}
		c.cwnd = min(c.cwnd+float64(ackedBytes)/float64(divisor), float64(c.cfg.MaxWindow))
		if exit {
			c.ssthresh = c.cwnd
		}
		return
	}
	c.avoid(now, ackedBytes)
}

// cwndLimited reports whether the flow used its window, the condition for
// growing it: a window the application does not fill proves nothing about the
// path. Slow start counts half a window as used, since each ACK releases two
// packets of which the pacer may have held one back.
func (c *cubic) cwndLimited(priorInFlight int) bool {
	inFlight := float64(priorInFlight)
	if c.InSlowStart() && 2*inFlight >= c.cwnd {
		return true
	}
	return inFlight+float64(pacingBurstPackets*c.mss) >= c.cwnd
}

// avoid is congestion avoidance (RFC 9438 section 4).
func (c *cubic) avoid(now time.Time, ackedBytes int) {
	mss := float64(c.mss)
	if c.epochStart.IsZero() {
		c.epochStart = now
		c.wEst = c.cwnd
		if c.cwnd < c.wMax {
			c.k = math.Cbrt((c.wMax - c.cwnd) / mss / cubicC)
		} else {
			c.k, c.wMax = 0, c.cwnd
		}
	}
	t := now.Sub(c.epochStart).Seconds()
	rtt := c.srtt.Seconds()

	// The Reno-friendly estimate grows by alpha segments per window acked,
	// and by one once it has passed the old maximum.
	alpha := cubicAlpha
	if c.wEst >= c.wMax {
		alpha = 1
	}
	c.wEst += alpha * float64(ackedBytes) * mss / c.cwnd

	if c.wCubic(t) < c.wEst {
		c.cwnd = c.wEst
	} else {
		target := min(max(c.wCubic(t+rtt), c.cwnd), 1.5*c.cwnd)
		c.cwnd += (target - c.cwnd) * float64(ackedBytes) / c.cwnd
	}
	c.cwnd = min(c.cwnd, float64(c.cfg.MaxWindow))
}

// wCubic is the cubic function at t seconds into the epoch, in bytes.
func (c *cubic) wCubic(t float64) float64 {
	d := t - c.k
	return (cubicC*d*d*d)*float64(c.mss) + c.wMax
}

func (c *cubic) OnLoss(now, sentTime time.Time, lostBytes, priorInFlight int) {
	c.rounds.onDone(lostBytes, max(priorInFlight-lostBytes, 0))
	if !c.recovery.newEvent(sentTime) {
		return
	}
	c.reduce(now)
	c.cwnd = c.ssthresh
}

// reduce is a congestion event: it sets wMax (with fast convergence: a flow
// whose window peaked below its previous peak releases bandwidth for new
// flows) and ssthresh, and starts a new epoch at the next ACK.
func (c *cubic) reduce(now time.Time) {
	if c.cwnd < c.wMax {
		c.wMax = c.cwnd * (1 + cubicBeta) / 2
	} else {
		c.wMax = c.cwnd
	}
	c.ssthresh = max(c.cwnd*cubicBeta, c.minWindow())
	c.epochStart = time.Time{}
	c.recovery.cut(now)
	c.hystart.reset()
}

// OnRetransmissionTimeout collapses the window to the minimum and restarts
// slow start up to ssthresh (RFC 5681 section 3.1, with RFC 9438's beta).
// Timeouts in a row, with no ACK between, reduce ssthresh only once.
func (c *cubic) OnRetransmissionTimeout(now time.Time) {
	if !c.afterRTO {
		c.reduce(now)
		c.afterRTO = true
	}
	c.recovery.cut(now)
	c.cwnd = c.minWindow()
}

func (c *cubic) CongestionWindow() int { return int(c.cwnd) }

func (c *cubic) PacingDelay(now time.Time, size int, leeway time.Duration) time.Duration {
	return c.pacer.delay(now, c.pacingRate(), size, leeway)
}

func (c *cubic) pacingRate() float64 { return windowPacingRate(c.cwnd, c.srtt, c.InSlowStart()) }

func (c *cubic) SetMaxDatagramSize(size int) {
	if size <= 0 {
		return
	}
	c.mss = size
	c.cwnd = resizedWindow(c.cwnd, c.sentAny, c.cfg.InitialWindowPackets, c.cfg.MinWindowPackets, size, c.cfg.MaxWindow)
}

func (c *cubic) InSlowStart() bool { return c.cwnd < c.ssthresh }
