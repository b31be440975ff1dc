package congestion

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// This file is a deterministic network simulator for the controllers: a
// virtual clock, one bottleneck link (rate, drop-tail queue, propagation
// delay, random loss, reordering, jitter) and senders that behave as the
// engine does (a window, a pacer, loss detection by packet and time threshold,
// a retransmission timer, an ACK per packet with selective acknowledgement).
// It runs simulated minutes in well under a second of CPU.
//
// The selective ACK is uTP's: a bitmask that starts at the first missing
// packet and reaches at most simSACKReach packets past it. While a packet is
// missing, the sender learns nothing of those that arrived beyond the reach
// until the gap closes: they stay in flight for it, as they do in the engine.

// simMSS is the packets' size: a uTP packet on an Ethernet path.
const simMSS = 1400

// simSACKReach is how many packets past the first missing one a selective ACK
// can report: the longest bitmask the extension carries.
const simSACKReach = wire.MaxSACKLen * 8

// simPath describes a network path. Rates are in bits per second.
type simPath struct {
	name       string
	rate       float64       // bottleneck rate, bit/s
	rtt        time.Duration // propagation round trip (half each way)
	queue      int           // bottleneck queue limit, packets
	loss       float64       // random loss on the data direction
	ackLoss    float64       // random loss on the ACK direction
	reorder    float64       // share of data packets that overtake others
	reorderGap time.Duration // how far such a packet jumps ahead
	jitter     time.Duration // uniform extra delay on each data packet
	cpuHog     bool          // both hosts share their CPU with a busy process
	clockDrift float64       // receiver clock runs fast by this ratio (LEDBAT)
	duration   time.Duration // simulated time
	warmup     time.Duration // time excluded from the goodput figure
	seed       uint64
}

// simFlowSpec is one flow over the path.
type simFlowSpec struct {
	newCC func() Controller
	start time.Duration
	stop  time.Duration // zero: until the end
}

// simResult is what a run measured.
type simResult struct {
	goodput     []float64 // per flow, bit/s over [warmup, end]
	utilisation float64   // all flows' goodput over the link's rate
	meanQueue   time.Duration
	p95Queue    time.Duration
	retransmits []float64 // per flow, retransmitted share of packets sent
}

type simEventKind uint8

const (
	evData      simEventKind = iota // a data packet reaches the receiver
	evAck                           // an ACK reaches the sender
	evWake                          // the sender's pacing timer fires
	evRTO                           // the sender's retransmission timer fires
	evLossTimer                     // the sender's time-threshold loss timer fires
	evStart                         // the flow starts
)

type simEvent struct {
	at   int64 // ns of virtual time
	seq  uint64
	kind simEventKind
	flow *simFlow
	a, b int // evData: packet number, data id; evAck: arrival log index; timers: generation; evWake: b is its time
}

// simHeap is a binary min-heap of events by time, then by insertion order.
type simHeap []simEvent

func (h simHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *simHeap) push(e simEvent) {
	*h = append(*h, e)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *simHeap) pop() simEvent {
	s := *h
	e := s[0]
	n := len(s) - 1
	s[0] = s[n]
	*h = s[:n]
	s = s[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s.less(l, m) {
			m = l
		}
		if r < n && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	return e
}

// simHost models a CPU shared with a busy process: the host runs for a while,
// then is descheduled for up to a few milliseconds, and whatever reaches it
// meanwhile waits for it to run again. An idle host is always running.
type simHost struct {
	busy                 bool
	rng                  *rand.Rand
	stallStart, stallEnd int64
}

const (
	hogMeanRun  = 6 * time.Millisecond // mean time the host runs between stalls
	hogMaxStall = 6 * time.Millisecond // the longest stall
)

// available is the first time at or after t the host runs. Calls come in
// nondecreasing t.
func (h *simHost) available(t int64) int64 {
	if !h.busy {
		return t
	}
	for t >= h.stallEnd {
		run := int64(h.rng.ExpFloat64() * float64(hogMeanRun))
		h.stallStart = h.stallEnd + run
		h.stallEnd = h.stallStart + h.rng.Int64N(int64(hogMaxStall))
	}
	if t >= h.stallStart {
		return h.stallEnd
	}
	return t
}

type simPacketState uint8

const (
	pktInFlight simPacketState = iota
	pktAcked
	pktLost
)

type simPacket struct {
	sentAt int64
	data   int
	state  simPacketState
}

type simArrival struct {
	pn    int
	data  int
	at    int64 // receiver's arrival time
	sent  int64
	reach int // data ids below this were reportable when it arrived
}

// simFlow is a bulk sender and its receiver.
type simFlow struct {
	cc      Controller
	rtt     RTTStats
	stop    int64
	stopped bool

	pkts         []simPacket
	lowest       int // lowest packet number that may be in flight
	largest      int // largest packet number acknowledged, -1 before any
	inFlight     int
	nextData     int
	retx         []int // data ids waiting for retransmission, lowest first
	sent, resent int

	wakeAt             int64 // pending pacing wake-up, or -1
	rtoGen, lossGen    int
	rtoBackoff         int
	reoWnd             time.Duration // RACK's reordering window; 0 until reordering is seen
	sendHost, recvHost *simHost

	// receiver
	delivered []bool
	cumData   int // the first data id not yet delivered
	arrivals  []simArrival
	ackedUpTo int          // arrivals the sender has processed
	hidden    []simArrival // arrivals processed but beyond the reach of every ACK so far, by data id
	ackReach  int          // the latest ACK could report data ids below this
	goodBytes int64
}

type simulator struct {
	path   simPath
	rng    *rand.Rand
	now    int64
	seq    uint64
	events simHeap
	base   time.Time

	linkFree   int64   // when the link finishes its current packet
	queueDeps  []int64 // departure times of packets queued or in service
	queueSum   float64
	queueCount int
	queueSamp  []int64

	flows []*simFlow
}

func (s *simulator) schedule(at int64, kind simEventKind, f *simFlow, a, b int) {
	s.seq++
	s.events.push(simEvent{at: at, seq: s.seq, kind: kind, flow: f, a: a, b: b})
}

func (s *simulator) clock() time.Time { return s.base.Add(time.Duration(s.now)) }

// runSim runs flows over path and reports what they achieved.
func runSim(path simPath, specs ...simFlowSpec) simResult {
	if path.duration == 0 {
		path.duration = 30 * time.Second
	}
	if path.warmup == 0 {
		path.warmup = path.duration / 5
	}
	s := &simulator{
		path: path,
		rng:  rand.New(rand.NewPCG(path.seed, 0x5eed)),
		base: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, sp := range specs {
		f := &simFlow{
			cc:       sp.newCC(),
			largest:  -1,
			wakeAt:   -1,
			sendHost: &simHost{busy: path.cpuHog, rng: rand.New(rand.NewPCG(path.seed, uint64(2*i+1)))},
			recvHost: &simHost{busy: path.cpuHog, rng: rand.New(rand.NewPCG(path.seed, uint64(2*i+2)))},
			stop:     int64(path.duration),
		}
		if sp.stop > 0 {
			f.stop = int64(sp.stop)
		}
		f.cc.SetMaxDatagramSize(simMSS)
		s.flows = append(s.flows, f)
		s.schedule(int64(sp.start), evStart, f, 0, 0)
	}
	end := int64(path.duration)
	for len(s.events) > 0 {
		e := s.events.pop()
		if e.at > end {
			break
		}
		s.now = e.at
		f := e.flow
		// A busy host handles nothing while descheduled: the event waits.
		host := f.sendHost
		if e.kind == evData {
			host = f.recvHost
		}
		if at := host.available(e.at); at > e.at {
			s.seq++
			e.at, e.seq = at, s.seq
			s.events.push(e)
			continue
		}
		switch e.kind {
		case evStart:
			s.trySend(f)
		case evData:
			s.onData(f, e.a, e.b)
		case evAck:
			s.onAck(f, e.a)
		case evWake:
			if f.wakeAt == int64(e.b) {
				f.wakeAt = -1
				s.trySend(f)
			}
		case evRTO:
			if e.a == f.rtoGen {
				s.onRTO(f)
			}
		case evLossTimer:
			if e.a == f.lossGen {
				s.detectLoss(f)
				s.trySend(f)
			}
		}
	}
	return s.result()
}

func (s *simulator) result() simResult {
	var r simResult
	span := (s.path.duration - s.path.warmup).Seconds()
	var total float64
	for _, f := range s.flows {
		g := float64(f.goodBytes) * 8 / span
		r.goodput = append(r.goodput, g)
		total += g
		rt := 0.0
		if f.sent > 0 {
			rt = float64(f.resent) / float64(f.sent)
		}
		r.retransmits = append(r.retransmits, rt)
	}
	r.utilisation = total / s.path.rate
	if s.queueCount > 0 {
		r.meanQueue = time.Duration(s.queueSum / float64(s.queueCount))
	}
	if n := len(s.queueSamp); n > 0 {
		slices.Sort(s.queueSamp)
		r.p95Queue = time.Duration(s.queueSamp[n*95/100])
	}
	return r
}

// trySend sends what the window and the pacer allow, as the engine's send
// loop does, and sets a pacing wake-up if the pacer holds a packet back.
func (s *simulator) trySend(f *simFlow) {
	if f.stopped || s.now >= f.stop {
		f.stopped = true
		return
	}
	for f.inFlight+simMSS <= f.cc.CongestionWindow() {
		now := s.clock()
		if d := f.cc.PacingDelay(now, simMSS, 0); d > 0 {
			at := s.now + int64(d)
			if f.wakeAt < 0 || at < f.wakeAt {
				f.wakeAt = at
				s.schedule(at, evWake, f, 0, int(at))
			}
			return
		}
		s.sendOne(f)
	}
}

func (s *simulator) sendOne(f *simFlow) {
	data := f.nextData
	if n := len(f.retx); n > 0 {
		data = f.retx[0]
		f.retx = f.retx[1:]
		f.resent++
	} else {
		f.nextData++
	}
	f.sent++
	pn := len(f.pkts)
	f.pkts = append(f.pkts, simPacket{sentAt: s.now, data: data})
	f.cc.OnPacketSent(s.clock(), f.inFlight, simMSS)
	f.inFlight += simMSS
	if f.inFlight == simMSS || f.rtoGen == 0 {
		s.armRTO(f)
	}
	s.transmit(f, pn, data)
}

// transmit puts a packet on the path: random loss, the drop-tail queue, the
// link's serialisation, propagation, reordering and jitter.
func (s *simulator) transmit(f *simFlow, pn, data int) {
	p := &s.path
	if p.loss > 0 && s.rng.Float64() < p.loss {
		return
	}
	for len(s.queueDeps) > 0 && s.queueDeps[0] <= s.now {
		s.queueDeps = s.queueDeps[1:]
	}
	if len(s.queueDeps) >= p.queue {
		return
	}
	serial := int64(float64(simMSS*8) / p.rate * 1e9)
	start := max(s.now, s.linkFree)
	wait := start - s.now
	s.linkFree = start + serial
	s.queueDeps = append(s.queueDeps, s.linkFree)
	s.queueSum += float64(wait)
	s.queueCount++
	if s.queueCount%16 == 0 {
		s.queueSamp = append(s.queueSamp, wait)
	}
	arrive := s.linkFree + int64(p.rtt/2)
	if p.reorder > 0 && s.rng.Float64() < p.reorder {
		arrive -= min(int64(p.reorderGap), int64(p.rtt/2))
	}
	if p.jitter > 0 {
		arrive += s.rng.Int64N(int64(p.jitter))
	}
	s.schedule(arrive, evData, f, pn, data)
}

// onData is the receiver: it records the arrival and acknowledges it at once.
func (s *simulator) onData(f *simFlow, pn, data int) {
	for len(f.delivered) <= data {
		f.delivered = append(f.delivered, false)
	}
	if !f.delivered[data] {
		f.delivered[data] = true
		if s.now >= int64(s.path.warmup) {
			f.goodBytes += simMSS
		}
	}
	for f.cumData < len(f.delivered) && f.delivered[f.cumData] {
		f.cumData++
	}
	f.arrivals = append(f.arrivals, simArrival{pn: pn, data: data, at: s.now, sent: f.pkts[pn].sentAt, reach: f.cumData + 1 + simSACKReach})
	if s.path.ackLoss > 0 && s.rng.Float64() < s.path.ackLoss {
		return
	}
	s.schedule(s.now+int64(s.path.rtt/2), evAck, f, len(f.arrivals), 0)
}

// onAck processes an ACK that covers every arrival up to index upTo, as a
// selective ACK does, except those beyond its reach.
func (s *simulator) onAck(f *simFlow, upTo int) {
	if upTo <= f.ackedUpTo {
		return
	}
	now := s.clock()
	prior := f.inFlight
	acked := 0
	reach := f.arrivals[upTo-1].reach
	f.ackReach = reach
	reported := f.arrivals[f.ackedUpTo:upTo]
	if len(f.hidden) > 0 && f.hidden[0].data < reach || slices.ContainsFunc(reported, func(a simArrival) bool { return a.data >= reach }) {
		// hidden is kept in order of data id, so what the reach now covers
		// is a prefix of it.
		var now []simArrival
		for _, a := range reported {
			if a.data < reach {
				now = append(now, a)
				continue
			}
			i, _ := slices.BinarySearchFunc(f.hidden, a.data, func(h simArrival, d int) int { return h.data - d })
			f.hidden = slices.Insert(f.hidden, i, a)
		}
		i, _ := slices.BinarySearchFunc(f.hidden, reach, func(h simArrival, d int) int { return h.data - d })
		reported = append(now, f.hidden[:i]...)
		f.hidden = f.hidden[i:]
	}
	for _, a := range reported {
		// A packet declared lost and acknowledged after all counts as
		// acknowledged, as the controllers' contract asks.
		p := &f.pkts[a.pn]
		switch p.state {
		case pktInFlight:
			acked += simMSS
			f.inFlight -= simMSS
		case pktLost:
			acked += simMSS
			// A spurious loss: the path reorders by more than the window.
			f.reoWnd = min(max(2*f.reoWnd, f.rtt.MinRTT()/4), f.rtt.SmoothedRTT())
		}
		// One that arrived beyond the reach is reported late, not reordered.
		if a.pn < f.largest && f.reoWnd == 0 && a.data < a.reach {
			f.reoWnd = f.rtt.MinRTT() / 4
		}
		p.state = pktAcked
		f.largest = max(f.largest, a.pn)
	}
	f.ackedUpTo = upTo
	last := f.arrivals[upTo-1]
	delay := time.Duration(-1)
	if acked > 0 {
		// The sample is from the packet that triggered this ACK.
		f.rtt.UpdateRTT(time.Duration(s.now-last.sent), now)
		oneWay := float64(last.at - last.sent)
		// The receiver's clock runs off by a constant and drifts.
		oneWay += float64(int64(37*time.Millisecond)) + s.path.clockDrift*float64(last.at)
		delay = time.Duration(oneWay)
		f.rtoBackoff = 0
		s.armRTO(f)
	}
	f.cc.OnAck(now, acked, prior, &f.rtt, delay)
	s.detectLoss(f)
	s.trySend(f)
}

// detectLoss is RACK (RFC 8985) as a good engine does it: until the path is
// seen to reorder, a packet is lost once three later packets have been
// acknowledged or it is 9/8 of an RTT older than an acknowledged one; after,
// only by time, with a reordering window that widens on each spurious loss.
// It sets a timer for what may yet be lost. Packets beyond the latest ACK's
// reach are not judged: the ACK could not have reported them.
func (s *simulator) detectLoss(f *simFlow) {
	if f.largest < 0 {
		return
	}
	rtt := max(f.rtt.SmoothedRTT(), f.rtt.LatestRTT())
	thresh := int64(rtt * 9 / 8)
	pktThresh := 3
	if f.reoWnd > 0 {
		thresh = int64(rtt + f.reoWnd)
		pktThresh = math.MaxInt / 2
	}
	now := s.clock()
	next := int64(-1)
	for f.lowest < len(f.pkts) && f.pkts[f.lowest].state != pktInFlight {
		f.lowest++
	}
	for pn := f.lowest; pn < f.largest; pn++ {
		p := &f.pkts[pn]
		if p.state != pktInFlight || p.data >= f.ackReach {
			continue
		}
		if pn <= f.largest-pktThresh || s.now-p.sentAt >= thresh {
			prior := f.inFlight
			p.state = pktLost
			f.inFlight -= simMSS
			f.lose(p.data)
			f.cc.OnLoss(now, s.base.Add(time.Duration(p.sentAt)), simMSS, prior)
			continue
		}
		if next < 0 {
			next = p.sentAt + thresh
		}
	}
	if next >= 0 {
		f.lossGen++
		s.schedule(next, evLossTimer, f, f.lossGen, 0)
	}
}

// lose queues data for retransmission, the oldest first, as the engine
// resends. In the order of the losses instead, a timeout could queue the
// receiver's first gap behind thousands of packets it already holds beyond
// the selective ACK's reach: their acknowledgements report nothing new, the
// window stays at its minimum, and the timer backs off until the flow stalls.
func (f *simFlow) lose(data int) {
	i, _ := slices.BinarySearch(f.retx, data)
	f.retx = slices.Insert(f.retx, i, data)
}

func (s *simulator) armRTO(f *simFlow) {
	f.rtoGen++
	if f.inFlight == 0 {
		return
	}
	rto := f.rtt.RTO() << min(f.rtoBackoff, 6)
	s.schedule(s.now+int64(rto), evRTO, f, f.rtoGen, 0)
}

// onRTO declares everything in flight lost, backs the timer off and resends.
func (s *simulator) onRTO(f *simFlow) {
	if f.inFlight == 0 {
		return
	}
	f.cc.OnRetransmissionTimeout(s.clock())
	for pn := f.lowest; pn < len(f.pkts); pn++ {
		if p := &f.pkts[pn]; p.state == pktInFlight {
			p.state = pktLost
			f.lose(p.data)
		}
	}
	f.inFlight = 0
	f.rtoBackoff++
	s.trySend(f)
	s.armRTO(f)
}

// mbit formats a rate for logs.
func mbit(bps float64) float64 { return math.Round(bps/1e4) / 100 }
