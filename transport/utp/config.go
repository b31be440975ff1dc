package utp

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/congestion"
	"github.com/p2phttp/p2phttp/transport/utp/internal/engine"
)

// Config tunes a Transport. The zero value gives the defaults documented on each field; every timer is a field so
// tests (and unusual networks) can shorten or lengthen it.
type Config struct {
	// SocketBuffer is the SO_RCVBUF/SO_SNDBUF size requested for the UDP socket. Default 4 MiB: with the kernel
	// default (about 208 KiB) a single uTP connection overflows the socket buffer and stalls. Linux caps the request
	// at net.core.rmem_max/wmem_max; Transport.BufferSizes reports what was granted.
	SocketBuffer int
	// KeepaliveInterval is how often an idle path sends a probe, which keeps the NAT mappings open and tells the
	// peer the path lives (streams have no idle timeout of their own). Default 10 s.
	KeepaliveInterval time.Duration
	// DeadPathTimeout: when no authenticated packet arrived from the peer for this long the path is dead, and every
	// stream on it fails with an error wrapping ErrPathDead. Default 30 s.
	DeadPathTimeout time.Duration
	// ProbeInterval is how often the path sends an RTT probe (Path.RTT) while the peer has not yet confirmed the
	// path, a probe went unanswered, or packets in flight wait for a peer that went quiet for longer than the RTT:
	// a dead route is found fast. Default 20 ms.
	ProbeInterval time.Duration
	// BusyProbeInterval is how often the path probes while streams send and the peer's datagrams keep coming. They
	// show the route alive, so these probes only keep Path.RTT fresh, and each costs both peers a wake-up. Default
	// 100 ms.
	BusyProbeInterval time.Duration
	// PunchInterval is how often Connect sends a punch packet to each remote candidate. Default 50 ms.
	PunchInterval time.Duration
	// ConnectTimeout bounds Connect when its context has no deadline. Default 20 s.
	ConnectTimeout time.Duration
	// OpenTimeout bounds OpenStream when its context has no deadline (the engine resends its SYN with backoff until
	// then). Default 30 s.
	OpenTimeout time.Duration
	// STUNRetransmit is the first STUN retransmission timeout (RFC 5389 uses 500 ms); it doubles after every
	// request, up to 8 times the first. Default 250 ms.
	STUNRetransmit time.Duration
	// STUNTimeout bounds DiscoverSTUN when its context has no deadline. Default 5 s.
	STUNTimeout time.Duration
	// CloseTimeout bounds how long a closed stream goes on delivering what was written, in the background, before
	// it resets the connection; Path.Close waits as long for closed streams to deliver. Default 30 s.
	CloseTimeout time.Duration
	// StreamWindow is each stream's receive window: the most it buffers for a reader that does not keep up (in order
	// and out of order), and so the most a peer's writer gets ahead of that reader. A window below the path's
	// bandwidth-delay product limits one stream's rate to StreamWindow per RTT. Default 16 MiB.
	StreamWindow int
	// MaxWindow caps what one stream keeps in flight and queued for sending (the congestion window never grows
	// beyond it), so it bounds a stream's rate to MaxWindow per RTT and its send buffer memory. Default 16 MiB.
	MaxWindow int
	// AcceptBacklog is how many streams opened by the peer may wait for AcceptStream; more are refused (the peer's
	// OpenStream fails with an error wrapping ErrStreamClosed). Default 64.
	AcceptBacklog int
	// CongestionControl chooses each stream's congestion controller:
	//   - "bbr" (the default): model-based; it paces at the path's measured bottleneck rate and keeps about twice the
	//     bandwidth-delay product in flight, so random loss and a busy CPU's scheduling delay do not slow it.
	//   - "cubic": loss-based (RFC 9438 with HyStart++), as kernel TCP's default; fairer to CUBIC flows sharing a
	//     shallow buffer, slower on lossy paths.
	//   - "ledbat": delay-based background mode (RFC 6817, BEP 29's 100 ms target): it yields to other traffic on
	//     the bottleneck, for bulk transfers that must not slow the user's other connections.
	// Any other value makes NewTransport fail.
	CongestionControl string
	// HardNATSockets is how many extra UDP sockets a path opens, each sending sealed punches to the peer's
	// server-reflexive address, when this side's NAT maps every destination to a new public port
	// (MappingPerDestination, from DiscoverNAT) and the peer's NAT does not: the peer probes random ports of our
	// public address, and the first probe that lands on one of these mappings gives the path a direct route on that
	// socket (the birthday paradox: 256 mappings among 64,512 ports are found by about 1,000 random probes 98% of
	// the time). The sockets the path does not use are closed once a direct route carries it or HardNATTimeout
	// passes. Default 256, at most 1,024; negative: never.
	HardNATSockets int
	// HardNATProbes bounds the probes this side sends to the public ports of a peer whose NAT maps per destination
	// (when ours does not): ports predicted from a sequence in the peer's STUN observations first, then random
	// ones, each at most once. Default 2,000 (over 99.9% against 256 sockets), at most 64,512; negative: never.
	HardNATProbes int
	// HardNATProbeInterval paces those probes: one per interval on average. Default 2 ms (2,000 probes in 4 s).
	HardNATProbeInterval time.Duration
	// HardNATTimeout bounds a hard-NAT punch on both sides: probing stops and the extra sockets close after it, so
	// two peers that cannot meet directly stay on the relay without wasting more. Default 15 s.
	HardNATTimeout time.Duration
	// ReaderGrace: a stream's Read that waits for data reads the Transport's socket itself, so that its data reaches
	// it without waking another thread; when it returns, the socket stays its to read for this long, so that the
	// next Read of a request/response exchange reads on with no hand-off, before a background goroutine reads it
	// again. Everything else that arrives meanwhile (keepalives, STUN, data of streams nobody reads) waits at most
	// this long, or 16 times as long while Reads keep taking the socket (a download); a Write that waits for
	// acknowledgements has it read at once. Default 1 ms; negative: a background goroutine always reads the socket,
	// and wakes each Read.
	ReaderGrace time.Duration

	// Logger receives debug and warning records. Default: discard.
	Logger *slog.Logger

	// noSeal (tests and benchmarks only) leaves payloads in clear with a zero tag: the same datagrams, counters and
	// replay checks, without the AEAD, to measure what sealing costs.
	noSeal bool
	// auxPortBase (tests only), when set, binds a hard-NAT punch's extra socket i to port auxPortBase+i instead of a
	// port of the kernel's choice.
	auxPortBase int
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
	def(&c.BusyProbeInterval, 100*time.Millisecond)
	def(&c.PunchInterval, 50*time.Millisecond)
	def(&c.ConnectTimeout, 20*time.Second)
	def(&c.OpenTimeout, 30*time.Second)
	def(&c.STUNRetransmit, 250*time.Millisecond)
	def(&c.STUNTimeout, 5*time.Second)
	def(&c.CloseTimeout, 30*time.Second)
	if c.StreamWindow <= 0 {
		c.StreamWindow = 16 << 20
	}
	if c.MaxWindow <= 0 {
		c.MaxWindow = 16 << 20
	}
	if c.AcceptBacklog <= 0 {
		c.AcceptBacklog = 64
	}
	if c.CongestionControl == "" {
		c.CongestionControl = "bbr"
	}
	if c.HardNATSockets == 0 {
		c.HardNATSockets = 256
	}
	c.HardNATSockets = min(c.HardNATSockets, maxHardNATSockets)
	if c.HardNATProbes == 0 {
		c.HardNATProbes = 2000
	}
	c.HardNATProbes = min(c.HardNATProbes, maxHardNATProbes)
	def(&c.HardNATProbeInterval, 2*time.Millisecond)
	def(&c.HardNATTimeout, 15*time.Second)
	if c.ReaderGrace == 0 {
		c.ReaderGrace = time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Bounds of the hard-NAT punch: sockets (file descriptors) per path, and probes (every public port above the
// privileged ones once).
const (
	maxHardNATSockets = 1024
	maxHardNATProbes  = 65536 - 1024
)

// controllers are the choices of Config.CongestionControl.
var controllers = map[string]func() congestion.Controller{
	"bbr":    congestion.NewDefault,
	"cubic":  func() congestion.Controller { return congestion.NewCubic(congestion.CubicConfig{}) },
	"ledbat": func() congestion.Controller { return congestion.NewLEDBAT(congestion.LEDBATConfig{}) },
}

// validate reports a configuration NewTransport cannot run.
func (c Config) validate() error {
	if controllers[c.CongestionControl] == nil {
		return fmt.Errorf("utp: unknown congestion control %q (want bbr, cubic or ledbat)", c.CongestionControl)
	}
	return nil
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
	// ErrStreamClosed: the peer closed or reset the stream (or refused it), so it no longer reads what is written.
	ErrStreamClosed = engine.ErrReset
	// ErrBadKey: Peer.Key is not 32 bytes.
	ErrBadKey = errors.New("utp: session key must be 32 bytes")
	// ErrRoles: both peers, or neither, set Peer.Dialer.
	ErrRoles = errors.New("utp: exactly one peer must be the dialler")
)

// errSendBufferFull: the kernel's send buffer was full and the datagram was dropped instead of waiting.
var errSendBufferFull = errors.New("utp: socket send buffer full")
