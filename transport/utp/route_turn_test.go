package utp

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/signal/relay"
	"github.com/stretchr/testify/require"
)

var relaySecret = []byte("route_turn_test secret")

// startTURN runs p2phttp's TURN relay (pion/turn's server) on loopback UDP and TCP ports.
func startTURN(t *testing.T) (udp, tcp string) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	s, err := relay.New(relay.Config{Secret: relaySecret, AllowPrivatePeers: true, RateLimit: -1}, pc, l)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return pc.LocalAddr().String(), l.Addr().String()
}

func relayConfig(t *testing.T, server, user string, tcp bool) RelayConfig {
	t.Helper()
	cred, err := relay.NewCredentials(relaySecret, user, time.Minute)
	require.NoError(t, err)
	return RelayConfig{Server: server, TCP: tcp, Username: cred.Username, Password: cred.Password}
}

// firewall wraps a socket and, while blocked, drops every datagram to or from one address (the peer's socket):
// the direct route dies, the relay (other addresses) still works. noUDP drops everything.
type firewall struct {
	net.PacketConn
	peer    atomic.Pointer[netip.AddrPort]
	blocked atomic.Bool
	noUDP   atomic.Bool
	// echoesFromPeer, when set, drops the peer's datagrams of a probe echo's length (sealing makes them opaque, but
	// no other datagram has that length: an engine datagram is longer, a probe shorter).
	echoesFromPeer atomic.Bool
	// restricted admits datagrams only from addresses the socket sent to, as a port-restricted cone NAT does.
	restricted atomic.Bool
	sentTo     sync.Map // netip.AddrPort: true
}

func (f *firewall) drops(a net.Addr) bool {
	ap, _ := addrPortOf(a)
	p := f.peer.Load()
	return f.noUDP.Load() || (f.blocked.Load() && p != nil && *p == ap)
}

func (f *firewall) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := f.PacketConn.ReadFrom(b)
		if err != nil {
			return n, from, err
		}
		if f.echoesFromPeer.Load() && n == sealedOverhead+1+1+8 { // kind, flags, the echoed counter
			if ap, _ := addrPortOf(from); ap == *f.peer.Load() {
				continue
			}
		}
		if ap, _ := addrPortOf(from); f.restricted.Load() {
			if _, ok := f.sentTo.Load(ap); !ok {
				continue
			}
		}
		if !f.drops(from) {
			return n, from, err
		}
	}
}

func (f *firewall) WriteTo(b []byte, to net.Addr) (int, error) {
	if f.drops(to) {
		return len(b), nil
	}
	if ap, ok := addrPortOf(to); ok {
		f.sentTo.Store(ap, true)
	}
	return f.PacketConn.WriteTo(b, to)
}

// relayPair is two Transports on loopback with a relay each; each socket sits behind a firewall (fw the dialer's,
// accFW the acceptor's, which blocks nothing unless a test says so).
type relayPair struct {
	fw, accFW            *firewall
	dialerRelay          *Relay
	dialerTr, acceptorTr *Transport
	dialer, acceptor     *Path
}

func newRelayPair(t *testing.T, cfg Config, tcpDialer, blocked bool) *relayPair {
	t.Helper()
	return newRelayPairWith(t, cfg, tcpDialer, blocked, true)
}

// newRelayPairWith is newRelayPair, with an allocation for the acceptor only when acceptorRelay (without one, the
// acceptor's address is offered as a server-reflexive candidate, so the dialer's relay sends to it).
func newRelayPairWith(t *testing.T, cfg Config, tcpDialer, blocked, acceptorRelay bool) *relayPair {
	t.Helper()
	udpServer, tcpServer := startTURN(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	rp := &relayPair{fw: &firewall{PacketConn: pc}}
	rp.dialerTr, err = NewTransport(rp.fw, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { rp.dialerTr.Close() })
	apc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	rp.accFW = &firewall{PacketConn: apc}
	rp.acceptorTr, err = NewTransport(rp.accFW, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { rp.acceptorTr.Close() })
	acc, dial := rp.acceptorTr.LocalAddr().AddrPort(), rp.dialerTr.LocalAddr().AddrPort()
	rp.fw.peer.Store(&acc)
	rp.accFW.peer.Store(&dial)
	rp.fw.blocked.Store(blocked)
	rp.fw.noUDP.Store(tcpDialer)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dserver := udpServer
	if tcpDialer {
		dserver = tcpServer
	}
	dr, err := rp.dialerTr.AllocateRelay(ctx, relayConfig(t, dserver, "dialer", tcpDialer))
	require.NoError(t, err, "dialer's allocation")
	rp.dialerRelay = dr
	require.True(t, dr.Addr().IsValid(), "dialer's relayed address %v", dr.Addr())
	host := func(tr *Transport) Candidate { return Candidate{Kind: CandidateHost, Addr: tr.LocalAddr().AddrPort()} }
	dialerCands := []Candidate{host(rp.acceptorTr)}
	if !acceptorRelay {
		// As a peer behind a NAT offers its reflexive address: one a relay can reach.
		dialerCands[0].Kind = CandidateSrflx
	} else {
		ar, err := rp.acceptorTr.AllocateRelay(ctx, relayConfig(t, udpServer, "acceptor", false))
		require.NoError(t, err, "acceptor's allocation")
		require.True(t, dr.Addr() != ar.Addr(), "relayed addresses %v and %v", dr.Addr(), ar.Addr())
		dialerCands = append(dialerCands, ar.Candidate())
	}

	key := bytes.Repeat([]byte{7}, 32)
	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() {
		defer wg.Done()
		rp.dialer, errA = rp.dialerTr.Connect(ctx, Peer{Key: key, Dialer: true, Candidates: dialerCands})
	}()
	go func() {
		defer wg.Done()
		rp.acceptor, errB = rp.acceptorTr.Connect(ctx, Peer{Key: key,
			Candidates: []Candidate{host(rp.dialerTr), dr.Candidate()}})
	}()
	wg.Wait()
	require.NoError(t, errA, "Connect: dialer (acceptor: %v)", errB)
	require.NoError(t, errB, "Connect: acceptor (dialer: %v)", errA)
	t.Cleanup(func() {
		rp.dialer.Close()
		rp.acceptor.Close()
	})
	return rp
}

// waitRoute waits until p's route is relayed (or not).
func waitRoute(t *testing.T, p *Path, relayed bool, within time.Duration) PathRoute {
	t.Helper()
	deadline := time.After(within)
	for {
		changed := p.RouteChanged()
		if r := p.Route(); r.Relayed == relayed {
			return r
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("route still %+v after %v, want relayed=%v", p.Route(), within, relayed)
		}
	}
}

// A path whose direct route is blocked starts on the relay; a 32 MiB transfer moves to the direct route when it
// opens and back to the relay when it closes again, and arrives byte-exact.
func TestRelayFirstUpgradeAndFallBack(t *testing.T) {
	rp := newRelayPair(t, Config{}, false, true)
	for _, p := range []*Path{rp.dialer, rp.acceptor} {
		r := p.Route()
		require.True(t, r.Relayed, "route at connect %+v, want relayed", r)
		require.True(t, r.Relay.IsValid(), "route at connect %+v, want a relay address", r)
	}
	const size = 32 << 20
	var phase atomic.Int32
	progress := func(n int64) {
		switch {
		case n > size/4 && phase.CompareAndSwap(0, 1):
			rp.fw.blocked.Store(false) // the direct route opens
		case n > size/2 && phase.Load() == 2 && phase.CompareAndSwap(2, 3):
			rp.fw.blocked.Store(true) // and dies
		}
	}
	done := make(chan transferResult, 1)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		res, err := transferVerified(ctx, rp.dialer, rp.acceptor, size, 64<<10, 3, progress)
		errc <- err
		done <- res
	}()
	for phase.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	r := waitRoute(t, rp.dialer, false, 30*time.Second)
	t.Logf("upgraded: %+v", r)
	waitRoute(t, rp.acceptor, false, 30*time.Second)
	phase.Store(2)
	for phase.Load() == 2 {
		time.Sleep(10 * time.Millisecond)
	}
	r = waitRoute(t, rp.dialer, true, 30*time.Second)
	t.Logf("fell back: %+v", r)
	require.NoError(t, <-errc, "transfer")
	res := <-done
	require.Equal(t, int64(size), res.n, "bytes received")
	require.True(t, res.sent == res.received, "SHA-256 of received data %x, sent %x", res.received, res.sent)
	t.Logf("32 MiB byte-exact in %v", res.elapsed.Round(time.Millisecond))
}

// Probe echoes lost on a direct route that still brings the peer's data do not send the path to the relay: the
// probes alone would condemn it, the data shows it alive.
func TestLostEchoesOnALiveRouteKeepIt(t *testing.T) {
	rp := newRelayPair(t, Config{}, false, false)
	waitRoute(t, rp.dialer, false, 20*time.Second)
	const size = 64 << 20
	var relayed atomic.Bool
	var lostSince time.Time
	var done bool
	progress := func(n int64) {
		if n < 1<<20 || done {
			return
		}
		// The stream is open and data flows: drop the echoes until the dialer has counted enough probes lost for
		// a while.
		rp.fw.echoesFromPeer.Store(true)
		if rp.dialer.Route().Relayed {
			relayed.Store(true)
		}
		rp.dialer.mu.Lock()
		lost := rp.dialer.sel.lostInRow
		rp.dialer.mu.Unlock()
		switch {
		case lost < fallbackAfterLost:
		case lostSince.IsZero():
			lostSince = time.Now()
		case time.Since(lostSince) > 500*time.Millisecond:
			rp.fw.echoesFromPeer.Store(false)
			done = true
		}
		time.Sleep(time.Millisecond) // a slower reader, so the probes have time to be lost
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := transferVerified(ctx, rp.acceptor, rp.dialer, size, 16<<10, 5, progress)
	require.NoError(t, err, "transfer")
	require.True(t, res.n == size && res.sent == res.received, "transfer of %d bytes not byte-exact", res.n)
	require.False(t, relayed.Load(), "the dialer fell back on the relay while the peer's data kept arriving")
	require.False(t, lostSince.IsZero(), "the firewall did not cost the dialer its probe echoes")
}

// A Transport whose UDP socket can send and receive nothing still connects through its TURN allocation over TCP,
// and carries a stream.
func TestRelayOverTCP(t *testing.T) {
	rp := newRelayPair(t, Config{}, true, true)
	r := rp.dialer.Route()
	require.True(t, r.Relayed, "route %+v, want relayed", r)
	require.True(t, r.Relay == rp.dialerRelay.Server(), "route %+v, want through our relay %v", r, rp.dialerRelay.Server())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := transferVerified(ctx, rp.dialer, rp.acceptor, 1<<20, 16<<10, 4, nil)
	require.NoError(t, err, "transfer")
	require.True(t, res.sent == res.received, "transfer of %d bytes not byte-exact", res.n)
	require.True(t, res.n == 1<<20, "transferred %d bytes, want %d", res.n, 1<<20)
}

// Peers that can reach each other directly from the start use the direct route, not the relay.
func TestRelayNotUsedWhenDirectWorks(t *testing.T) {
	rp := newRelayPair(t, Config{}, false, false)
	r := waitRoute(t, rp.dialer, false, 20*time.Second)
	require.True(t, r.Host, "route %+v, want a host pair", r)
}

// A refused or unanswered allocation fails with ErrRelay in time, and leaves the Transport without a relay.
func TestAllocateRelayFailures(t *testing.T) {
	udpServer, tcpServer := startTURN(t)
	tr, err := Listen("udp4", "127.0.0.1:0", Config{})
	require.NoError(t, err)
	defer tr.Close()

	bad := relayConfig(t, udpServer, "x", false)
	bad.Password = "wrong"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = tr.AllocateRelay(ctx, bad)
	require.ErrorIs(t, err, ErrRelay)

	silent, err := net.ListenPacket("udp4", "127.0.0.1:0") // a UDP port nobody answers on
	require.NoError(t, err)
	defer silent.Close()
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer scancel()
	start := time.Now()
	_, err = tr.AllocateRelay(sctx, relayConfig(t, silent.LocalAddr().String(), "x", false))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, time.Since(start) < 10*time.Second, "gave up after %v", time.Since(start))

	_, err = tr.AllocateRelay(ctx, relayConfig(t, "127.0.0.1:1", "x", true)) // no TCP listener
	require.ErrorIs(t, err, ErrRelay)
	require.Empty(t, tr.loadRelays(), "relays left")

	r, err := tr.AllocateRelay(ctx, relayConfig(t, tcpServer, "x", true))
	require.NoError(t, err)
	require.Equal(t, CandidateRelay, r.Candidate().Kind, "candidate kind")
	require.NoError(t, tr.Close())
	select {
	case <-r.Done():
	default:
		t.Fatal("the relay outlived its Transport")
	}
}

// An idle path notices that its direct route died from its keepalive probes, falls back on the relay (whose own
// keepalives kept it open), and still carries a stream.
func TestIdlePathFallsBack(t *testing.T) {
	rp := newRelayPair(t, Config{KeepaliveInterval: 300 * time.Millisecond, DeadPathTimeout: time.Minute}, false, true)
	rp.fw.blocked.Store(false)
	waitRoute(t, rp.dialer, false, 20*time.Second)
	waitRoute(t, rp.acceptor, false, 20*time.Second)
	time.Sleep(time.Second) // idle: keepalives only, on the direct route and the relay
	rp.fw.blocked.Store(true)
	waitRoute(t, rp.dialer, true, 20*time.Second)
	waitRoute(t, rp.acceptor, true, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := transferVerified(ctx, rp.acceptor, rp.dialer, 1<<20, 16<<10, 5, nil)
	require.NoError(t, err, "transfer")
	require.True(t, res.sent == res.received, "transfer of %d bytes not byte-exact", res.n)
	require.True(t, res.n == 1<<20, "transferred %d bytes, want %d", res.n, 1<<20)
	require.NoError(t, rp.dialer.Err(), "dialer's path")
}
