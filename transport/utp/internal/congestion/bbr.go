package congestion

import "time"

// BBR's constants (BBR v1, as Linux and the IETF draft have them).
const (
	bbrHighGain           = 2.885 // 2/ln(2): doubles the delivery rate each round
	bbrDrainGain          = 1 / bbrHighGain
	bbrCwndGain           = 2.0 // window over the estimated BDP in steady state
	bbrBwWindowRounds     = 10  // rounds the maximum delivery rate is kept
	bbrFullBwThresh       = 1.25
	bbrFullBwRounds       = 3
	bbrMinRTTWindow       = 10 * time.Second
	bbrProbeRTTTime       = 200 * time.Millisecond
	bbrMinCwndPackets     = 4
	bbrAckAggRounds       = 5                      // rounds per slot of the ACK aggregation filter
	bbrAckAggMaxTime      = 100 * time.Millisecond // the most ACK aggregation that can add to the window
	bbrQuantumPackets     = 3                      // the window's allowance for pacing bursts and delayed ACKs
	bbrLossThresh         = 0.02                   // a round losing more than this share with a standing queue is congestion
	bbrStartupLossPackets = 8                      // startup's rounds must lose more packets than this to be congested
	bbrQueueMinDelay      = 2 * time.Millisecond   // the least standing queue that makes a lossy round congested
	bbrQueueSpan          = 2 * time.Millisecond   // the least time startup's RTT samples must show a queue for it to count
	bbrQueueSamples       = 32                     // and the fewest samples in a row
	bbrInflightHiBeta     = 0.7                    // what a congested round leaves of the window
	bbrCycleLen           = 8
	bbrProbeUpGain        = 1.25
	bbrProbeDownGain      = 0.75
	bbrProbeRTTPackets    = 4
)

type bbrMode uint8

const (
	bbrStartup bbrMode = iota
	bbrDrain
	bbrProbeBW
	bbrProbeRTT
)

// BBRConfig tunes NewBBR. The zero value selects the defaults documented on
// each field.
type BBRConfig struct {
	// InitialWindowPackets is the window before any feedback. Default 10.
	InitialWindowPackets int
	// MaxWindow caps the window, in bytes. Default 64 MiB.
	MaxWindow int
}

func (c BBRConfig) withDefaults() BBRConfig {
	if c.InitialWindowPackets <= 0 {
		c.InitialWindowPackets = 10
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = 64 << 20
	}
	return c
}

// bbr is a model-based controller: it estimates the path's bottleneck rate
// (the maximum delivery rate over ten rounds) and its propagation delay (the
// minimum RTT over ten seconds), paces at that rate, cycling a quarter above
// and below it to probe for more, and keeps twice their product in flight.
//
// Random loss does not enter the model, which is why it keeps a lossy long path
// full where any loss-based controller collapses. Loss does bound it, after BBR
// v2 (and ends startup, see checkStartupQueue): a round that loses more than 2%
// of what it sent while even its smallest RTT sample shows a standing queue is
// a queue overflowing, and caps the data in flight at 0.7 of that round's until
// a cycle of eight rounds passes without such a round. The cap is never below
// 1.25 times the estimated BDP, so that a flow holding a small share can still
// probe for more: a cap at its own BDP would hold it at that share for good.
// That keeps a shallow drop-tail queue from overflowing every round, while
// losses with no queue (random loss, reordering taken for loss) and delay with
// no loss (a busy CPU) are not read as congestion. Through loss recovery the
// window never falls below what is in flight, so each ACK lets out what it
// acknowledged: the engine counts as in flight the packets that arrived beyond
// the selective ACK's reach of a gap, and a window cut below them would hold
// back the very retransmissions that close the gap.
type bbr struct {
	cfg BBRConfig
	mss int

	mode       bbrMode
	pacingGain float64
	cwndGain   float64
	cwnd       float64 // bytes

	rs     rateSampler
	rounds roundCounter
	maxBw  maxFilter // bytes per second, windowed over rounds

	minRTT      time.Duration
	minRTTStamp time.Time

	// Startup's exit: the rate stopped growing by a quarter a round.
	appLimitedSample bool // the latest rate sample was app-limited
	fullBw           float64
	fullBwRounds     int
	filledPipe       bool
	// The highest pacing rate of startup so far, below which it does not
	// fall until the pipe is full (as in Linux's BBR). A round's first
	// samples measure only the packets acknowledged by then, a SYN's the
	// size of a header: paced at those, startup would stall for rounds with
	// its window open.
	startupRate float64
	// Startup's RTT samples have all shown a standing queue since
	// queueSince (zero: the latest did not), queueSamples of them, and
	// startupQueued once enough have for long enough to say the pipe is
	// full.
	queueSince    time.Time
	queueSamples  int
	startupQueued bool

	// ProbeBW's gain cycle.
	cycleIndex int
	cycleStart time.Time

	// ProbeRTT.
	idleRestart   bool // sending restarted from idle, app-limited; no data acknowledged since
	probeRTTDone  time.Time
	probeRTTRound int64
	priorCwnd     float64

	// ACK aggregation: how far ACKs ran ahead of the estimated rate, the
	// maximum of two slots of bbrAckAggRounds rounds each.
	ackEpochStart time.Time
	ackEpochBytes float64
	extraAcked    [2]float64
	extraAckedIdx int
	aggRounds     int

	// The loss cap of a congested round.
	roundLost, roundDone float64
	roundMinRTT          time.Duration
	inflightHi           float64 // bytes; 0: no cap
	capRounds            int     // rounds since the cap was last set

	// Loss recovery: from a loss until a round passes without one, the
	// window keeps what is in flight, so retransmissions leave as ACKs
	// arrive whatever the model says (packet conservation).
	inRecovery bool

	afterRTO bool
	sentAny  bool // a packet has left: the initial window no longer follows the size
	srtt     time.Duration
	pacer    pacer
	inFlight int // after the latest ACK, send or loss
}

// NewBBR returns a model-based controller in the manner of BBR: it paces at
// the path's estimated bottleneck rate and keeps twice the estimated
// bandwidth-delay product in flight, so random loss and a delay that a busy
// CPU adds to the RTT do not slow it down. See the package documentation for
// why it is the default.
func NewBBR(cfg BBRConfig) Controller {
	cfg = cfg.withDefaults()
	b := &bbr{cfg: cfg, mss: DefaultMaxDatagramSize}
	b.cwnd = float64(cfg.InitialWindowPackets * b.mss)
	b.enterStartup()
	return b
}

func (b *bbr) enterStartup() {
	b.mode, b.pacingGain, b.cwndGain = bbrStartup, bbrHighGain, bbrHighGain
	b.queueSince, b.startupQueued = time.Time{}, false
}

func (b *bbr) minCwnd() float64 { return float64(bbrMinCwndPackets * b.mss) }

func (b *bbr) bw() float64 { return b.maxBw.get() }

// bdp is the estimated bandwidth-delay product, bytes; 0 without a model.
func (b *bbr) bdp() float64 {
	if b.minRTT == 0 {
		return 0
	}
	return b.bw() * b.minRTT.Seconds()
}

func (b *bbr) OnPacketSent(now time.Time, bytesInFlight, size int) {
	b.sentAny = true
	if bytesInFlight == 0 && b.rs.appLimited != 0 {
		b.restartFromIdle(now)
	}
	b.rs.onSent(now, bytesInFlight, size, b.minRTT)
	b.inFlight = bytesInFlight + size
	b.pacer.sent(now, b.pacingRate(), size, b.mss)
}

// restartFromIdle readies the model to send again after the application
// left the path idle. The model is kept (an idle path is no evidence that it
// changed), the window too, and the pacer spreads it over a round trip.
func (b *bbr) restartFromIdle(now time.Time) {
	b.idleRestart = true
	switch {
	case b.mode == bbrProbeBW && b.pacingGain > 1:
		// A burst at the probing gain would only build a queue.
		b.cycleIndex, b.pacingGain, b.cycleStart = 2, 1, now
	case b.mode == bbrProbeRTT && !b.probeRTTDone.IsZero() && now.After(b.probeRTTDone):
		// The idle time drained the queue as ProbeRTT would have.
		b.exitProbeRTT(now)
	}
}

// OnAppLimited implements AppLimitedObserver.
func (b *bbr) OnAppLimited(bytesInFlight int) { b.rs.onAppLimited(bytesInFlight) }

func (b *bbr) OnAck(now time.Time, ackedBytes, priorInFlight int, rtt *RTTStats, _ time.Duration) {
	b.srtt = rtt.SmoothedRTT()
	b.raiseStartupRate() // the rate of the initial window, before the first sample
	b.inFlight = max(priorInFlight-ackedBytes, 0)
	if b.afterRTO && ackedBytes > 0 {
		// The path delivers again: back to the window the model had.
		b.afterRTO = false
		b.cwnd = max(b.cwnd, b.priorCwnd)
		if b.mode != bbrProbeRTT {
			b.priorCwnd = 0 // else ProbeRTT still needs it
		}
	}
	sample := rtt.LatestRTT()
	minRTTExpired := !b.minRTTStamp.IsZero() && now.Sub(b.minRTTStamp) > bbrMinRTTWindow
	if sample > 0 && (b.minRTT == 0 || sample <= b.minRTT || minRTTExpired) {
		b.minRTT, b.minRTTStamp = sample, now
	}

	if sample > 0 && (b.roundMinRTT == 0 || sample < b.roundMinRTT) {
		b.roundMinRTT = sample
	}
	roundStart := b.rounds.onDone(ackedBytes, b.inFlight)
	b.roundDone += float64(ackedBytes)
	rs := b.rs.onAck(now, ackedBytes, sample, b.minRTT)
	if b.inFlight == 0 {
		b.rs.idle()
	}
	if rs.rate > 0 {
		b.appLimitedSample = rs.appLimited
	}
	if rs.rate > 0 && (!rs.appLimited || rs.rate >= b.bw()) {
		b.maxBw.update(b.rounds.count, bbrBwWindowRounds, rs.rate)
	}
	if roundStart {
		b.endRound()
	}
	b.checkStartupQueue(now, sample)
	b.updateAckAggregation(now, ackedBytes, roundStart)
	b.updateCycle(now, priorInFlight)
	b.checkDrain(now)
	// The first RTT sample after an idle restart saw the queue drained by
	// the idle time, so it renewed the minimum as ProbeRTT would have:
	// probing again would only halve the window of a connection that
	// resumes after ten idle seconds, as keep-alive connections do.
	b.checkProbeRTT(now, minRTTExpired && !b.idleRestart)
	if ackedBytes > 0 {
		b.idleRestart = false
	}
	b.setCwnd(ackedBytes)
	b.raiseStartupRate()
}

// raiseStartupRate keeps startupRate at the highest pacing rate of startup.
func (b *bbr) raiseStartupRate() {
	if !b.filledPipe {
		b.startupRate = max(b.startupRate, b.modelPacingRate())
	}
}

// endRound runs once a round: startup's exit test and the loss cap.
func (b *bbr) endRound() {
	// A rate that stopped growing because the application sent too little
	// says nothing of the pipe.
	if !b.filledPipe && !b.appLimitedSample {
		if b.bw() >= b.fullBw*bbrFullBwThresh {
			b.fullBw, b.fullBwRounds = b.bw(), 0
		} else if b.fullBwRounds++; b.fullBwRounds >= bbrFullBwRounds {
			b.filledPipe = true
		}
	}
	total := b.roundLost + b.roundDone
	// In startup a round may be a handful of packets, and losing a few of
	// them (a short burst, a receiver descheduled with a full socket buffer,
	// reordering taken for loss) would cap the window at a fraction of a tiny
	// round: the rate would stop growing under the cap, startup would end
	// with a model far below the path, and ProbeBW climbs only a quarter
	// every eight rounds. So startup needs more losses in a round, as BBR v2
	// asks, before it reads them as a queue overflowing.
	minLost := bbrMinCwndPackets
	if !b.filledPipe {
		minLost = bbrStartupLossPackets
	}
	lossy := b.lostOver(minLost, total)
	queued := b.queuedRTT(b.roundMinRTT)
	if b.roundLost == 0 {
		b.inRecovery = false
	}
	if lossy && queued {
		// Congestion: cap what is in flight below what this round had, but
		// never below what fills the pipe and lets ProbeBW probe, so that
		// the model's estimates cannot spiral down.
		b.inflightHi = max(bbrInflightHiBeta*b.roundDone, bbrProbeUpGain*b.bdp()+float64(bbrQuantumPackets*b.mss), b.minCwnd())
		b.capRounds = 0
	} else if b.inflightHi > 0 {
		// A cycle's worth of rounds without congestion lifts the cap: a
		// cap kept for long would hold a flow that lost its share to a
		// newcomer at that share for good.
		if b.capRounds++; b.capRounds >= bbrCycleLen {
			b.inflightHi = 0
		}
	}
	b.roundLost, b.roundDone, b.roundMinRTT = 0, 0, 0
}

// lostOver reports whether this round has lost more than minPackets packets
// and more than bbrLossThresh of total bytes.
func (b *bbr) lostOver(minPackets int, total float64) bool {
	return b.roundLost > float64(minPackets*b.mss) && b.roundLost > bbrLossThresh*total
}

// queuedRTT reports whether an RTT shows a standing queue: a quarter of the
// minimum RTT above it, and at least bbrQueueMinDelay.
func (b *bbr) queuedRTT(rtt time.Duration) bool {
	return b.minRTT > 0 && rtt > b.minRTT+max(b.minRTT/4, bbrQueueMinDelay)
}

// checkStartupQueue sizes startup's window by whether its RTT shows a
// standing queue. Startup doubles what it sends each round, and its bandwidth
// estimate lags a round behind: a window of 2.885 times the estimated BDP
// overfills a queue of one BDP by most of a BDP for the rounds it takes to
// see the rate stop growing, and the sender then resends a tenth or more of
// what it sent. While every RTT sample for a while has seen a queue, the pipe
// is full, the estimate is the path's rate, and twice the BDP (pipe and
// queue, as in BBR v3) is room enough; otherwise startup keeps its window,
// which random loss and reordering cannot shrink. The queue must last a
// quarter of the minimum RTT (at least bbrQueueSpan) and bbrQueueSamples
// samples, so that acknowledgements that come late together (a sender
// descheduled by a busy CPU, a burst held up on a path that reorders) do not
// make the verdict, nor a path whose minimum RTT is that of the few packets
// that overtake the rest.
func (b *bbr) checkStartupQueue(now time.Time, sample time.Duration) {
	if b.mode != bbrStartup || sample <= 0 {
		return
	}
	if !b.queuedRTT(sample) {
		b.queueSince, b.startupQueued, b.cwndGain = time.Time{}, false, bbrHighGain
		return
	}
	if b.queueSince.IsZero() {
		b.queueSince, b.queueSamples = now, 0
	}
	if b.queueSamples++; b.queueSamples >= bbrQueueSamples && now.Sub(b.queueSince) >= max(b.minRTT/4, bbrQueueSpan) {
		b.startupQueued, b.cwndGain = true, bbrCwndGain
	}
}

// updateAckAggregation estimates how many bytes ACKs deliver beyond what the
// estimated rate explains (a receiver that acknowledges in batches, a sender
// descheduled by a busy CPU): the window must cover that, or the flow stalls
// waiting for ACKs that are merely late.
func (b *bbr) updateAckAggregation(now time.Time, acked int, roundStart bool) {
	if roundStart {
		if b.aggRounds++; b.aggRounds >= bbrAckAggRounds {
			b.aggRounds = 0
			b.extraAckedIdx ^= 1
			b.extraAcked[b.extraAckedIdx] = 0
		}
	}
	bw := b.bw()
	if bw == 0 || acked <= 0 {
		return
	}
	expected := bw * now.Sub(b.ackEpochStart).Seconds()
	if b.ackEpochStart.IsZero() || b.ackEpochBytes <= expected {
		b.ackEpochStart, b.ackEpochBytes, expected = now, 0, 0
	}
	b.ackEpochBytes += float64(acked)
	extra := min(b.ackEpochBytes-expected, b.cwnd, bw*bbrAckAggMaxTime.Seconds())
	b.extraAcked[b.extraAckedIdx] = max(b.extraAcked[b.extraAckedIdx], extra)
}

// updateCycle advances ProbeBW's gain cycle: one min RTT at 1.25 (longer if
// the data in flight has not yet reached 1.25 BDP and nothing was lost), one
// at 0.75 (shorter once the queue it built has drained), six at 1.
func (b *bbr) updateCycle(now time.Time, priorInFlight int) {
	if b.mode != bbrProbeBW {
		return
	}
	elapsed := now.Sub(b.cycleStart) > b.minRTT
	inFlight := float64(priorInFlight)
	next := elapsed
	switch {
	case b.pacingGain > 1:
		next = elapsed && (inFlight >= b.pacingGain*b.bdp() || b.roundLost > 0 || (b.inflightHi > 0 && inFlight >= b.inflightHi))
	case b.pacingGain < 1:
		next = elapsed || inFlight <= b.bdp()
	}
	if next {
		b.cycleIndex = (b.cycleIndex + 1) % bbrCycleLen
		b.cycleStart = now
		b.pacingGain = cycleGain(b.cycleIndex)
	}
}

func cycleGain(i int) float64 {
	switch i {
	case 0:
		return bbrProbeUpGain
	case 1:
		return bbrProbeDownGain
	}
	return 1
}

// checkDrain moves from startup to drain once the pipe is full, and from
// drain to ProbeBW once startup's queue is gone.
func (b *bbr) checkDrain(now time.Time) {
	if b.mode == bbrStartup && b.filledPipe {
		b.mode, b.pacingGain, b.cwndGain = bbrDrain, bbrDrainGain, bbrHighGain
	}
	if b.mode == bbrDrain && float64(b.inFlight) <= b.bdp() {
		b.enterProbeBW(now)
	}
}

func (b *bbr) enterProbeBW(now time.Time) {
	b.mode, b.cwndGain = bbrProbeBW, bbrCwndGain
	// Start anywhere but the drain phase, so flows that start together do not
	// probe in step. The clock is as good a source as any.
	b.cycleIndex = 2 + int(uint64(now.UnixNano())/1000%(bbrCycleLen-1))
	if b.cycleIndex >= bbrCycleLen {
		b.cycleIndex = 0
	}
	b.pacingGain = cycleGain(b.cycleIndex)
	b.cycleStart = now
}

// checkProbeRTT drains the queue for 200 ms and a round when the minimum RTT
// has not been seen for ten seconds, so that flows sharing a bottleneck all
// see its empty delay and do not inflate each other's BDP for ever.
func (b *bbr) checkProbeRTT(now time.Time, expired bool) {
	if b.mode != bbrProbeRTT && expired && !b.afterRTO {
		b.mode, b.pacingGain, b.cwndGain = bbrProbeRTT, 1, 1
		b.priorCwnd = max(b.priorCwnd, b.cwnd)
		b.probeRTTDone = time.Time{}
	}
	if b.mode != bbrProbeRTT {
		return
	}
	switch {
	case b.probeRTTDone.IsZero() && float64(b.inFlight) <= b.probeRTTCwnd():
		b.probeRTTDone = now.Add(bbrProbeRTTTime)
		b.probeRTTRound = b.rounds.count
	case !b.probeRTTDone.IsZero() && now.After(b.probeRTTDone) && b.rounds.count > b.probeRTTRound:
		b.exitProbeRTT(now)
	}
}

// exitProbeRTT ends ProbeRTT with the window it had before.
func (b *bbr) exitProbeRTT(now time.Time) {
	b.minRTTStamp = now
	b.cwnd = max(b.cwnd, b.priorCwnd)
	b.priorCwnd = 0
	if b.filledPipe {
		b.enterProbeBW(now)
	} else {
		b.enterStartup()
	}
}

// setCwnd moves the window toward its target: the gain times the BDP, plus
// what ACK aggregation needs and a few packets for pacing bursts, within
// the loss cap. It grows by at most what was acknowledged, so it never
// releases a burst.
func (b *bbr) setCwnd(acked int) {
	target := b.targetCwnd()
	switch {
	case b.mode == bbrProbeRTT:
		b.cwnd = min(b.cwnd, b.probeRTTCwnd())
		return
	case b.filledPipe:
		b.cwnd = min(b.cwnd+float64(acked), target)
	case b.cwnd < target || b.rs.delivered < int64(b.cfg.InitialWindowPackets*b.mss):
		b.cwnd += float64(acked)
	}
	if b.inflightHi > 0 {
		b.cwnd = min(b.cwnd, b.inflightHi)
	}
	if b.inRecovery {
		// A cut takes effect as ACKs come back, never at once: a window
		// below what is in flight would hold back the retransmissions that
		// repair the losses, and the engine counts as in flight the
		// packets that arrived beyond the selective ACK's reach until they
		// do.
		b.cwnd = max(b.cwnd, float64(b.inFlight+acked))
	}
	b.cwnd = min(max(b.cwnd, b.minCwnd()), float64(b.cfg.MaxWindow))
}

// probeRTTCwnd is the window while probing for the minimum RTT: half the
// BDP (as BBR v2) drains the queue of a lone flow as well as four packets
// would, at half the cost in rate.
func (b *bbr) probeRTTCwnd() float64 {
	return max(b.bdp()/2, float64(bbrProbeRTTPackets*b.mss))
}

func (b *bbr) targetCwnd() float64 {
	bdp := b.bdp()
	if bdp == 0 {
		return float64(b.cfg.InitialWindowPackets * b.mss)
	}
	t := b.cwndGain*bdp + float64(bbrQuantumPackets*b.mss)
	if b.filledPipe || b.startupQueued {
		t += max(b.extraAcked[0], b.extraAcked[1])
	}
	return t
}

// OnLoss counts the loss toward its round's loss rate; the model otherwise
// ignores loss.
func (b *bbr) OnLoss(_, _ time.Time, lostBytes, priorInFlight int) {
	b.inFlight = max(priorInFlight-lostBytes, 0)
	b.roundLost += float64(lostBytes)
	b.rs.lost += int64(lostBytes)
	b.inRecovery = true
	if b.startupQueued && !b.filledPipe && b.lostOver(bbrStartupLossPackets, float64(priorInFlight)) {
		// Losses of more than a few packets, and of more than random loss
		// takes, over a full pipe's standing queue: the queue overflows,
		// and each further round of startup would lose what it overfills
		// by, while the window holds what is in flight through recovery.
		// The rate is known; drain now.
		b.filledPipe = true
	}
	if b.rounds.onDone(lostBytes, b.inFlight) {
		b.endRound()
	}
}

// OnRetransmissionTimeout drops the window to the minimum until the path
// delivers again, when the window the model had comes back: a timeout says
// the path stopped, not that the model is wrong.
//
// Until the bytes outstanding at the timeout are delivered, rate samples
// count as app-limited: while the loss is repaired at the minimum window,
// each round delivers a few packets, which measure the recovery, not the
// path, and ten such rounds would expire the bandwidth the model had. The
// flow would then climb back from a rate of a few packets a round at a
// quarter more every eight rounds, for tens of seconds on a long path.
func (b *bbr) OnRetransmissionTimeout(time.Time) {
	if !b.afterRTO {
		b.priorCwnd = max(b.priorCwnd, b.cwnd)
		b.afterRTO = true
	}
	b.rs.onRecoveryLimited()
	b.cwnd = b.minCwnd()
	b.inFlight = 0
}

func (b *bbr) CongestionWindow() int { return int(b.cwnd) }

func (b *bbr) PacingDelay(now time.Time, size int, leeway time.Duration) time.Duration {
	return b.pacer.delay(now, b.pacingRate(), size, leeway)
}

// pacingRate is modelPacingRate, never below startupRate until the pipe is
// full.
func (b *bbr) pacingRate() float64 {
	if !b.filledPipe {
		return max(b.modelPacingRate(), b.startupRate)
	}
	return b.modelPacingRate()
}

// modelPacingRate is the gain times the estimated bottleneck rate; before
// the first rate sample, the initial window over the smoothed RTT at
// startup's gain; before any RTT sample, unpaced.
func (b *bbr) modelPacingRate() float64 {
	if bw := b.bw(); bw > 0 {
		return b.pacingGain * bw
	}
	if b.srtt > 0 {
		return bbrHighGain * b.cwnd / b.srtt.Seconds()
	}
	return 0
}

// SetMaxDatagramSize keeps the model, which is in bytes.
func (b *bbr) SetMaxDatagramSize(size int) {
	if size <= 0 {
		return
	}
	b.mss = size
	b.cwnd = resizedWindow(b.cwnd, b.sentAny, b.cfg.InitialWindowPackets, bbrMinCwndPackets, size, b.cfg.MaxWindow)
}

func (b *bbr) InSlowStart() bool { return b.mode == bbrStartup }
