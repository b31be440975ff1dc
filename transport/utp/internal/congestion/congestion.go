// Package congestion holds the uTP engine's congestion controllers, its pacer
// and its RTT estimator. It knows nothing of packets' contents: the engine
// reports sends, acknowledgements and losses, and asks how much it may send
// and when.
//
// # Controllers
//
// NewDefault returns NewBBR, a model-based controller: it estimates the
// path's bottleneck rate from delivery-rate samples and its propagation delay
// from the minimum RTT, paces at that rate and keeps about twice their
// product in flight. NewCubic is CUBIC (RFC 9438) with HyStart++ (RFC 9406).
// NewLEDBAT is LEDBAT (RFC 6817, BEP 29's 100 ms target), an opt-in
// background mode that gives way to other traffic.
//
// BBR is the default because it is the only one of the three that keeps
// every path the engine must serve full. A loss-based controller reads every
// loss as congestion: at 1% random loss on an 80 ms path CUBIC holds a window
// of a few dozen packets, about 2% of a 100 Mbit/s link (kernel CUBIC fares
// the same). A delay-based controller reads the delay a busy CPU adds, when
// the sender or receiver is descheduled, as a queue. BBR reads neither:
// random loss and scheduling delay move neither the maximum delivery rate nor
// the minimum RTT, so it fills the lossy paths, and on the clean ones, where
// CUBIC does well too, it matches CUBIC with a far smaller queue. It takes
// from BBR v2 one use of loss: a round that loses more than 2% while even its
// smallest RTT sample shows a standing queue caps the data in flight, so that
// a shallow drop-tail queue does not overflow every round. Startup reads the
// same two signals: while its RTT samples show a standing queue the pipe is
// full, so it keeps no more than twice the BDP in flight (BBR v3's startup
// window), and it ends as soon as a round loses over that queue more than
// a few packets and 2% of what is in flight. BBR v1's startup overfills a
// queue of one BDP by most of a BDP for the three rounds it waits for the
// rate to stop growing, and resends a tenth of what it sent. The price,
// which kernel BBR v1 pays too: beside a CUBIC flow in a buffer of a BDP or
// less, BBR takes most of the link. NewCubic is there for whoever prefers
// the opposite trade.
//
// The simulator in this package's tests (a virtual clock, a drop-tail
// bottleneck, random loss, reordering, a busy CPU that deschedules both
// hosts, and uTP's selective ACK, which reaches only 2,016 packets past a
// gap) measures all three on those paths; go test -v -run TestSimPaths
// prints the table.
//
// # What the engine reports
//
// The engine calls OnPacketSent for every packet it sends (retransmissions
// too) and OnAck for every ACK that acknowledges new data, after updating
// RTTStats with the ACK's RTT sample: the time from the newest acknowledged
// packet's send to now, never from a retransmitted packet (Karn's rule). BBR
// takes its delivery-rate samples from that, so the engine keeps no rate
// state for it. ackedBytes counts every byte newly acknowledged, those of
// packets already declared lost included: such a loss was spurious, and the
// delivery rate must count what was delivered. priorInFlight and
// bytesInFlight leave out packets declared lost, but count those that
// arrived beyond the selective ACK's reach of a gap until it closes: the
// engine cannot know of them, so a late ACK may acknowledge many bytes sent
// long before, and BBR must neither read that as bandwidth nor hold its
// retransmissions back behind them. OnLoss is called for each
// packet declared lost, OnRetransmissionTimeout when the timer fires. A
// controller that implements AppLimitedObserver wants to hear when the
// sender has nothing to send with window to spare. The engine sends while the
// bytes in flight are below CongestionWindow and PacingDelay is zero, and
// otherwise sleeps for PacingDelay, longer by the leeway it passed when
// acknowledgements are due to wake it first (the pacer lets out what a late
// wake-up missed at once, up to a burst). OnAck's delay may be in any frame
// whose offset changes rarely (the raw timestamp difference, or that less a
// base the engine keeps): LEDBAT keeps a base of its own.
package congestion

import "time"

// Controller decides how many bytes may be in flight and when the next packet
// may leave. The engine calls it from one goroutine per connection at a time;
// implementations need no locking of their own.
type Controller interface {
	// OnPacketSent records a packet of size bytes that left at now, with
	// bytesInFlight bytes already in flight before it. Retransmissions count.
	OnPacketSent(now time.Time, bytesInFlight, size int)
	// OnAck records ackedBytes newly acknowledged at now (cumulatively or by
	// selective ACK); priorInFlight is what was in flight before this ACK.
	// rtt has already been updated with this ACK's sample, if it gave one.
	// delay is the one-way queuing delay estimate of BEP 29 (timestamp
	// difference less its base), or a negative value when unknown.
	OnAck(now time.Time, ackedBytes, priorInFlight int, rtt *RTTStats, delay time.Duration)
	// OnLoss records that a packet of lostBytes, sent at sentTime, was declared
	// lost at now. A controller reduces its window at most once per round trip:
	// losses of packets sent before the last reduction do not cut again.
	OnLoss(now, sentTime time.Time, lostBytes, priorInFlight int)
	// OnRetransmissionTimeout records that the retransmission timer fired: the
	// path delivered nothing for a whole RTO.
	OnRetransmissionTimeout(now time.Time)
	// CongestionWindow is how many bytes may be in flight now.
	CongestionWindow() int
	// PacingDelay is how long a packet of size bytes must wait before it may
	// leave at now; zero means it may leave at once. leeway is how long past
	// that wait the sender may come (it leaves the wait to an acknowledgement
	// that comes by then); the pacer's burst covers it, so the sender keeps
	// its rate.
	PacingDelay(now time.Time, size int, leeway time.Duration) time.Duration
	// SetMaxDatagramSize tells the controller the current packet size, which
	// changes as path MTU discovery finds larger sizes.
	SetMaxDatagramSize(size int)
	// InSlowStart reports whether the window is still in its exponential start.
	InSlowStart() bool
}

// NewDefault returns the controller the engine runs unless told otherwise:
// NewBBR with its defaults (the package documentation says why).
func NewDefault() Controller { return NewBBR(BBRConfig{}) }
