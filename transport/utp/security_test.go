package utp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/netem"
	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
	"github.com/stretchr/testify/require"
)

// Punching through two simulated port-restricted NATs (inbound only from address:ports sent to), with a dead
// candidate in each list.
func TestPunchThroughNATFilter(t *testing.T) {
	nat := netem.Config{Filter: netem.FilterAddressPort}
	a, na := wrapped(t, fastConfig(), nat)
	b, nb := wrapped(t, fastConfig(), nat)
	dead := deadAddr(t)
	key := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The non-dialler starts late: the dialler's first punches are filtered by b's NAT.
	pa, pb := connectBoth(t, ctx, a, b,
		Peer{Key: key, Candidates: append(b.HostCandidates(), Candidate{Kind: CandidateSrflx, Addr: dead}), Dialer: true},
		Peer{Key: key, Candidates: append([]Candidate{{Kind: CandidateSrflx, Addr: dead}}, a.HostCandidates()...)},
		100*time.Millisecond)
	require.True(t, nb.Filtered() > 0, "b's NAT filtered nothing: the test did not simulate a NAT")
	_ = na
	c1, c2 := openPair(t, pb, pa)
	exchange(t, c1, c2, 256<<10)
}

// TestPunchLearnsPeerReflexive is full cone <-> symmetric NAT in miniature: a (full cone: no filter) knows only a
// wrong address for b (a symmetric NAT's mapping towards STUN is not its mapping towards a), while b (filtering by
// address and port) knows a's. b's punches reach a from an address a never heard of; a must punch that
// peer-reflexive address, or b's NAT drops everything a sends and a is never answered. Both role assignments.
func TestPunchLearnsPeerReflexive(t *testing.T) {
	for _, aDials := range []bool{true, false} {
		t.Run(fmt.Sprintf("cone side dials=%v", aDials), func(t *testing.T) {
			t.Parallel()
			a, _ := wrapped(t, fastConfig(), netem.Config{})
			b, _ := wrapped(t, fastConfig(), netem.Config{Filter: netem.FilterAddressPort})
			key := newKey(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pa, pb := connectBoth(t, ctx, a, b,
				Peer{Key: key, Candidates: []Candidate{{Kind: CandidateSrflx, Addr: deadAddr(t)}}, Dialer: aDials},
				Peer{Key: key, Candidates: a.HostCandidates(), Dialer: !aDials}, 0)
			_, remote := pa.Pair()
			require.Equal(t, Candidate{Kind: CandidatePrflx, Addr: b.LocalAddr().AddrPort()}, remote)
			c1, c2 := openPair(t, pa, pb)
			exchange(t, c1, c2, 64<<10)
		})
	}
}

// connectBoth connects a (to peerOfA) and b (to peerOfB, starting after delayB) at once, as two peers would, and
// closes both paths when the test ends.
func connectBoth(t *testing.T, ctx context.Context, a, b *Transport, peerOfA, peerOfB Peer, delayB time.Duration) (pa, pb *Path) {
	t.Helper()
	type result struct {
		p   *Path
		err error
	}
	rb := make(chan result, 1)
	go func() {
		time.Sleep(delayB)
		p, err := b.Connect(ctx, peerOfB)
		rb <- result{p, err}
	}()
	pa, err := a.Connect(ctx, peerOfA)
	r := <-rb
	require.NoError(t, err, "a")
	require.NoError(t, r.err, "b")
	t.Cleanup(func() { pa.Close(); r.p.Close() })
	return pa, r.p
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) netip.AddrPort {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return a
}

func TestConnectFailsWithoutPeer(t *testing.T) {
	a := listen(t, fastConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := a.Connect(ctx, Peer{Key: newKey(t), Candidates: []Candidate{{Kind: CandidateHost, Addr: deadAddr(t)}}, Dialer: true})
	require.ErrorIs(t, err, ErrPunchFailed)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = a.Connect(ctx, Peer{Key: []byte("short"), Candidates: []Candidate{{Kind: CandidateHost, Addr: deadAddr(t)}}})
	require.ErrorIs(t, err, ErrBadKey)
	_, err = a.Connect(context.Background(), Peer{Key: newKey(t)})
	require.ErrorIs(t, err, ErrPunchFailed)
	// An IPv4 socket cannot reach an IPv6 candidate: refused at once rather than punched for the whole timeout.
	_, err = a.Connect(context.Background(), Peer{Key: newKey(t), Candidates: []Candidate{{Kind: CandidateHost, Addr: netip.MustParseAddrPort("[::1]:9")}}})
	require.ErrorIs(t, err, ErrPunchFailed)
}

// A stranger's SYN (a plain uTP SYN, as any uTP client would send it) never reaches uTP: it is not sealed, so it
// goes unanswered on either side of an established path, it is counted, and no stream appears.
func TestStrangerSYNDropped(t *testing.T) {
	t.Parallel()
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	stranger, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer stranger.Close()
	h := wire.Header{Type: wire.Syn, ConnID: 4242, SeqNr: 1, WndSize: 1 << 20}
	syn := h.Append(nil)
	for _, target := range []*Transport{a, b} {
		dropsBefore := target.Stats().Stranger
		_, err := stranger.WriteTo(syn, target.LocalAddr())
		require.NoError(t, err)
		deadline := time.Now().Add(5 * time.Second)
		for target.Stats().Stranger == dropsBefore {
			require.True(t, time.Now().Before(deadline), "no SYN dropped at the demultiplexer")
			time.Sleep(5 * time.Millisecond)
		}
	}
	stranger.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _, err = stranger.ReadFrom(make([]byte, 1500))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	for _, p := range []*Path{pa, pb} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := p.AcceptStream(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	// The path still works.
	c1, c2 := openPair(t, pa, pb)
	exchange(t, c1, c2, 1000)
}

// Forged punches get no answer and do not complete a punch; a genuine one (sealed with the key) does get an answer,
// so the silence is the seal at work; the same punch replayed gets none (no reflector).
func TestForgedPunchIgnored(t *testing.T) {
	b := listen(t, fastConfig())
	attacker, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer attacker.Close()
	key := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	connErr := make(chan error, 1)
	go func() {
		_, err := b.Connect(ctx, Peer{Key: key, Candidates: []Candidate{{Kind: CandidateHost, Addr: attacker.LocalAddr().(*net.UDPAddr).AddrPort()}}})
		connErr <- err
	}()
	to := b.LocalAddr()
	dialer, _ := pairKeys(t, key, ChaCha20Poly1305) // the attacker plays the dialler
	wrong, _ := pairKeys(t, newKey(t), ChaCha20Poly1305)
	// answers reads what b sends for a while and counts its replies (b's own punches keep coming regardless).
	answers := func() (replies int) {
		buf := make([]byte, 2048)
		attacker.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		for {
			n, _, err := attacker.ReadFrom(buf)
			if err != nil {
				return replies
			}
			if c, ok := openCtrl(dialer, buf[:n]); ok && c.kind == kindPunchReply {
				replies++
			}
		}
	}
	time.Sleep(50 * time.Millisecond) // b's path exists
	wrongKey := sealCtrl(wrong, 1, kindPunch, 0, u64(42))
	copy(wrongKey[1:9], u64(dialer.sendID)) // routed to b's path, sealed with another key
	badTag := sealCtrl(dialer, 2, kindPunch, 0, u64(42))
	badTag[len(badTag)-1] ^= 1
	truncated := sealCtrl(dialer, 3, kindPunch, 0, u64(42))[:30]
	before := b.Stats()
	for _, forged := range [][]byte{wrongKey, badTag, truncated} {
		attacker.WriteTo(forged, to)
	}
	require.Zero(t, answers(), "replies to forged punches")
	after := b.Stats()
	require.Equal(t, uint64(2), after.Unopened-before.Unopened, "forged punches counted as unopened")
	require.Equal(t, uint64(1), after.Stranger-before.Stranger, "the truncated punch counted as a stranger's datagram")
	// A forged reply claiming to answer b cannot complete the punch either.
	reply := sealCtrl(wrong, 4, kindPunchReply, flagConfirmed, make([]byte, 26))
	copy(reply[1:9], u64(dialer.sendID))
	attacker.WriteTo(reply, to)
	genuine := sealCtrl(dialer, 5, kindPunch, 0, u64(42))
	attacker.WriteTo(genuine, to)
	require.Equal(t, 1, answers(), "replies to a genuine punch")
	// The same punch again is a replay: dropped, counted, not answered.
	before = b.Stats()
	for range 3 {
		attacker.WriteTo(genuine, to)
	}
	require.Zero(t, answers(), "replies to a replayed punch")
	require.Equal(t, uint64(3), b.Stats().Replayed-before.Replayed, "replayed punches counted")
	err = <-connErr
	require.ErrorIs(t, err, ErrPunchFailed)
}

// A dead peer (everything dropped, or its socket gone) fails blocked reads and writes with ErrPathDead within about
// DeadPathTimeout.
func TestDeadPeerDetected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kill func(*Transport, *netem.Conn)
	}{
		{"all packets dropped", func(_ *Transport, nc *netem.Conn) { nc.Outage(time.Hour) }},
		{"socket closed", func(tr *Transport, _ *netem.Conn) { tr.pc.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastConfig()
			a := listen(t, cfg)
			b, nb := wrapped(t, cfg, netem.Config{})
			pa, pb := connectPair(t, a, b)
			reader, _ := openPair(t, pa, pb)
			writer, _ := openPair(t, pb, pa)
			_ = writer
			w2, _ := openPair(t, pa, pb)
			tc.kill(b, nb)
			start := time.Now()
			readErr := make(chan error, 1)
			go func() {
				_, err := reader.Read(make([]byte, 10))
				readErr <- err
			}()
			// Writes more than the peer's window, so the write blocks until the path is declared dead.
			_, werr := w2.Write(make([]byte, 3<<20))
			rerr := <-readErr
			elapsed := time.Since(start)
			require.ErrorIs(t, rerr, ErrPathDead)
			require.ErrorIs(t, werr, ErrPathDead)
			require.ErrorIs(t, pa.Err(), ErrPathDead)
			require.True(t, elapsed < cfg.DeadPathTimeout+2*time.Second, "detected after %v", elapsed)
			_, err := pa.OpenStream(context.Background())
			require.ErrorIs(t, err, ErrPathDead)
		})
	}
}

// Closing the peer's path is told, not timed out.
func TestPeerCloseIsTold(t *testing.T) {
	cfg := fastConfig()
	cfg.DeadPathTimeout = time.Minute
	a, b := listen(t, cfg), listen(t, cfg)
	pa, pb := connectPair(t, a, b)
	c, _ := openPair(t, pa, pb)
	start := time.Now()
	pb.Close()
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrPathClosed)
	select {
	case <-pa.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("path not done")
	}
	require.True(t, time.Since(start) < 5*time.Second, "took %v", time.Since(start))
	require.False(t, errors.Is(pa.Err(), ErrPathDead), "path error %v", pa.Err())
}

// Two diallers (or none) is a configuration error both sides report, not a silent timeout.
func TestRolesMustDiffer(t *testing.T) {
	for _, dialer := range []bool{true, false} {
		a, b := listen(t, fastConfig()), listen(t, fastConfig())
		key := newKey(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errc := make(chan error, 1)
		go func() {
			_, err := b.Connect(ctx, Peer{Key: key, Candidates: a.HostCandidates(), Dialer: dialer})
			errc <- err
		}()
		start := time.Now()
		_, err := a.Connect(ctx, Peer{Key: key, Candidates: b.HostCandidates(), Dialer: dialer})
		require.ErrorIs(t, err, ErrRoles)
		require.ErrorIs(t, <-errc, ErrRoles)
		require.True(t, time.Since(start) < 2*time.Second, "took %v", time.Since(start))
		cancel()
	}
}

// Punching, stream opens and closes all survive heavy loss (10% each way): every control exchange is retried. A
// SYN's first retransmission timeout comes from the path's RTT (the engine's RTTHint), so a lost SYN costs a fraction of a
// second and even several in a row fit the open's 10 s.
func TestControlUnderLoss(t *testing.T) {
	t.Parallel()
	lossy := func(seed uint64) netem.Config {
		return netem.Config{Out: netem.Impairment{Loss: 0.1}, In: netem.Impairment{Loss: 0.1}, Seed: seed}
	}
	cfg := fastConfig()
	cfg.DeadPathTimeout = 10 * time.Second
	a, _ := wrapped(t, cfg, lossy(1))
	b, _ := wrapped(t, cfg, lossy(2))
	pa, pb := connectPair(t, a, b)
	for i := range 4 {
		opener, acceptor := pa, pb
		if i%2 == 1 {
			opener, acceptor = pb, pa
		}
		start := time.Now()
		c1, c2 := openPair(t, opener, acceptor)
		opened := time.Since(start)
		exchange(t, c1, c2, 64<<10)
		t.Logf("stream %d: opened in %v, exchanged and closed in %v", i, opened.Round(time.Millisecond), (time.Since(start) - opened).Round(time.Millisecond))
	}
}
