package engine

import (
	"log/slog"
	"net"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/congestion"
)

// Config tunes an Endpoint. The zero value selects the defaults documented on
// each field.
type Config struct {
	// MaxWindow caps the bytes a connection keeps in flight and queued for
	// sending, and the congestion window. Default 16 MiB.
	MaxWindow int
	// MinSendBuffer is how much a Write may queue beyond what is in flight when
	// the congestion window is smaller. Default 256 KiB.
	MinSendBuffer int
	// ReceiveWindow is the most a connection buffers for its reader (in order
	// and out of order): the window it advertises when nothing is buffered.
	// Default 16 MiB.
	ReceiveWindow int

	// InitialRTO is the retransmission timeout before any RTT sample (the SYN's
	// first retry). Default 1 s.
	InitialRTO time.Duration
	// RTTHint, if set, reports a round-trip time the Link measured itself
	// (zero when it has none). Before a connection has an RTT sample of its
	// own, its retransmission timeout is then RFC 6298's for that first
	// measurement, RTT + max(2*RTT, MinRTO), instead of InitialRTO: a lost
	// SYN on a known path costs a fraction of a second, not a second. It is
	// called with a connection's lock held.
	RTTHint func() time.Duration
	// MinRTO is the least variation term of the retransmission timeout
	// (SRTT + max(4*RTTVAR, MinRTO)); MaxRTO caps the timeout, backoff
	// included. Defaults 200 ms and 60 s.
	MinRTO, MaxRTO time.Duration
	// AckDelay is how long an acknowledgement of in-order packets may wait
	// for more of them (AckEvery) or for data to ride on. Its timer seldom
	// acknowledges anything (the next packet or the reply does); where the
	// engine's timer is a runtime timer (not Linux), each run of it wakes a
	// thread all the same, about once per AckDelay while packets flow.
	// Default 10 ms, well within the PeerAckDelay a sender allows for.
	AckDelay time.Duration
	// AckEvery is how many in-order data packets one acknowledgement covers
	// when they come faster than AckDelay. Every acknowledgement costs the
	// peer a wake-up, the largest part of its work per packet on a slow
	// path where packets arrive one at a time. Packets out of order, filling
	// a gap, duplicated or beyond the window are acknowledged at once, so
	// loss recovery does not wait. Default 2.
	AckEvery int
	// PeerAckDelay is the longest the peer is assumed to delay an
	// acknowledgement; a tail loss probe waits for it. Default 25 ms.
	PeerAckDelay time.Duration
	// MinReorderWindow is the least time a packet may arrive late, after one
	// sent after it was acknowledged, before it counts as lost. Timers and
	// schedulers jitter by about this much. Default 1 ms.
	MinReorderWindow time.Duration

	// AcceptBacklog is how many connections opened by the peer may wait for
	// Accept; more are refused with a RESET. Default 64.
	AcceptBacklog int
	// CloseTimeout bounds how long a closed connection waits for its last data
	// and FIN to be acknowledged and for the peer's FIN, before it resets.
	// Default 30 s.
	CloseTimeout time.Duration
	// TimeWait is how long a finished connection still acknowledges a
	// retransmitted FIN. Default 2 s.
	TimeWait time.Duration

	// MaxDatagramSize caps the datagram size path MTU discovery may reach,
	// below what the Link reports. Default 9000.
	MaxDatagramSize int
	// MTUProbeInterval is how long after a finished search MTU discovery
	// tries larger sizes again. Default 10 min; negative disables probing.
	MTUProbeInterval time.Duration
	// MaxBatch is the most datagrams handed to the Link at once. Default 32.
	MaxBatch int

	// NewController makes a connection's congestion controller. Default
	// congestion.NewDefault. Whatever the controller allows, MaxWindow caps
	// what is in flight.
	NewController func() congestion.Controller

	// LocalAddr and RemoteAddr are what connections report as their
	// addresses. Default an Addr naming the connection.
	LocalAddr, RemoteAddr net.Addr

	// Logger receives debug events. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxWindow, 16<<20)
	def(&c.MinSendBuffer, 256<<10)
	def(&c.ReceiveWindow, 16<<20)
	def(&c.AcceptBacklog, 64)
	def(&c.MaxDatagramSize, 9000)
	def(&c.MaxBatch, 32)
	def(&c.AckEvery, 2)
	defDur(&c.InitialRTO, congestion.DefaultInitialRTO)
	defDur(&c.MinRTO, congestion.DefaultMinRTO)
	defDur(&c.MaxRTO, congestion.DefaultMaxRTO)
	defDur(&c.AckDelay, 10*time.Millisecond)
	defDur(&c.PeerAckDelay, 25*time.Millisecond)
	defDur(&c.MinReorderWindow, time.Millisecond)
	defDur(&c.CloseTimeout, 30*time.Second)
	defDur(&c.TimeWait, 2*time.Second)
	if c.MTUProbeInterval == 0 {
		c.MTUProbeInterval = 10 * time.Minute
	}
	if c.NewController == nil {
		c.NewController = congestion.NewDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
