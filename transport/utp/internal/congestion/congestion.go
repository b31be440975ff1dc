// Package congestion holds the uTP engine's congestion controllers (CUBIC with
// HyStart++ by default, LEDBAT as an opt-in background mode), its pacer and its
// RTT estimator. It knows nothing of packets' contents: the engine reports
// sends, acknowledgements and losses, and asks how much it may send and when.
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
	// leave at now; zero means it may leave at once.
	PacingDelay(now time.Time, size int) time.Duration
	// SetMaxDatagramSize tells the controller the current packet size, which
	// changes as path MTU discovery finds larger sizes.
	SetMaxDatagramSize(size int)
	// InSlowStart reports whether the window is still in its exponential start.
	InSlowStart() bool
}
