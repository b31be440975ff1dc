package utp

import (
	"errors"
	"log/slog"
	"time"
)

// Config tunes a Transport. The zero value gives the defaults documented on each field; every timer is a field so
// tests (and unusual networks) can shorten or lengthen it.
type Config struct {
	// SocketBuffer is the SO_RCVBUF/SO_SNDBUF size requested for the UDP socket. Default 4 MiB: with the kernel
	// default (about 208 KiB) a single uTP connection overflows the socket buffer and stalls. Linux caps the request
	// at net.core.rmem_max/wmem_max; Transport.BufferSizes reports what was granted.
	SocketBuffer int
	// KeepaliveInterval is how often an idle path sends a probe (keeping the NAT mapping and liveness) and an idle
	// stream sends a keepalive frame (keeping the uTP connection, which dies after 120 s without packets). Default 10 s.
	KeepaliveInterval time.Duration
	// DeadPathTimeout: when no authenticated packet arrived from the peer for this long the path is dead, and every
	// stream on it fails with an error wrapping ErrPathDead. Default 30 s.
	DeadPathTimeout time.Duration
	// ProbeInterval is how often the path sends an RTT probe while a stream wrote in the last second (or while the
	// peer has not yet confirmed the path). The probes feed the congestion controller. Default 20 ms.
	ProbeInterval time.Duration
	// PunchInterval is how often Connect sends a punch packet to each remote candidate. Default 50 ms.
	PunchInterval time.Duration
	// ConnectTimeout bounds Connect when its context has no deadline. Default 20 s.
	ConnectTimeout time.Duration
	// DialTimeout bounds one uTP dial attempt (the library resends its SYN at about 0, 0.8 and 2 s); a failed attempt
	// is retried until the OpenStream context ends. Default 3 s.
	DialTimeout time.Duration
	// OpenTimeout bounds OpenStream when its context has no deadline, and the stream handshake at the start
	// of each uTP connection. Default 30 s.
	OpenTimeout time.Duration
	// STUNRetransmit is the first STUN retransmission timeout (RFC 5389 uses 500 ms); it doubles after every
	// request, up to 8 times the first. Default 250 ms.
	STUNRetransmit time.Duration
	// STUNTimeout bounds DiscoverSTUN when its context has no deadline. Default 5 s.
	STUNTimeout time.Duration
	// CloseTimeout bounds how long a stream's Close waits for the peer to acknowledge everything written. Default 5 s.
	CloseTimeout time.Duration
	// StreamWindow is each stream's receive buffer (and the flow-control window the peer may fill). The stream always
	// drains its uTP connection into it, so a slow reader never stalls the uTP connection. Default 1 MiB.
	StreamWindow int
	// AcceptBacklog is how many streams opened by the peer may wait for AcceptStream; more are refused. Default 32.
	AcceptBacklog int
	// Congestion configures the per-path delay-based pacer.
	Congestion CongestionConfig
	// Logger receives debug and warning records. Default: discard.
	Logger *slog.Logger

	// noSeal (tests and benchmarks only) leaves payloads in clear with a zero tag: the same datagrams, counters and
	// replay checks, without the AEAD, to measure what sealing costs.
	noSeal bool
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.SocketBuffer <= 0 {
		c.SocketBuffer = 4 << 20
	}
	def(&c.KeepaliveInterval, 10*time.Second)
	def(&c.DeadPathTimeout, 30*time.Second)
	def(&c.ProbeInterval, 20*time.Millisecond)
	def(&c.PunchInterval, 50*time.Millisecond)
	def(&c.ConnectTimeout, 20*time.Second)
	def(&c.DialTimeout, 3*time.Second)
	def(&c.OpenTimeout, 30*time.Second)
	def(&c.STUNRetransmit, 250*time.Millisecond)
	def(&c.STUNTimeout, 5*time.Second)
	def(&c.CloseTimeout, 5*time.Second)
	if c.StreamWindow <= 0 {
		c.StreamWindow = 1 << 20
	}
	if c.StreamWindow < maxFramePayload {
		c.StreamWindow = maxFramePayload
	}
	if c.AcceptBacklog <= 0 {
		c.AcceptBacklog = 32
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Errors returned by this package; match them with errors.Is.
var (
	// ErrPunchFailed: Connect found no candidate pair answering in both directions in time.
	ErrPunchFailed = errors.New("utp: hole punching failed")
	// ErrPathDead: nothing authenticated arrived from the peer for Config.DeadPathTimeout.
	ErrPathDead = errors.New("utp: path dead")
	// ErrPathClosed: the path was closed, locally or by the peer.
	ErrPathClosed = errors.New("utp: path closed")
	// ErrTransportClosed: the Transport was closed.
	ErrTransportClosed = errors.New("utp: transport closed")
	// ErrSTUN: STUN discovery failed (no answer, an error response or a malformed one).
	ErrSTUN = errors.New("utp: STUN failed")
	// ErrStreamClosed: the peer closed the stream, so it no longer reads what is written.
	ErrStreamClosed = errors.New("utp: stream closed by peer")
	// ErrBadKey: Peer.Key is not 32 bytes.
	ErrBadKey = errors.New("utp: session key must be 32 bytes")
	// ErrRoles: both peers, or neither, set Peer.Dialer.
	ErrRoles = errors.New("utp: exactly one peer must be the dialler")
	// ErrProtocol: the peer broke the stream protocol (bad frame, window overrun, bad handshake).
	ErrProtocol = errors.New("utp: protocol violation")
)

// errSendBufferFull: the kernel's send buffer was full and the datagram was dropped instead of waiting.
var errSendBufferFull = errors.New("utp: socket send buffer full")
