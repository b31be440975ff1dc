package utp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/anacrolix/utp"
	"github.com/p2phttp/p2phttp/internal/netem"
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
		Peer{Key: key, Candidates: append(b.HostCandidates(), Candidate{CandidateSrflx, dead}), Dialer: true},
		Peer{Key: key, Candidates: append([]Candidate{{CandidateSrflx, dead}}, a.HostCandidates()...)},
		100*time.Millisecond)
	check(t, nb.Filtered() > 0, "b's NAT filtered nothing: the test did not simulate a NAT")
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
				Peer{Key: key, Candidates: []Candidate{{CandidateSrflx, deadAddr(t)}}, Dialer: aDials},
				Peer{Key: key, Candidates: a.HostCandidates(), Dialer: !aDials}, 0)
			_, remote := pa.Pair()
			equal(t, Candidate{Kind: CandidatePrflx, Addr: b.LocalAddr().AddrPort()}, remote)
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
	noErr(t, err, "a")
	noErr(t, r.err, "b")
	t.Cleanup(func() { pa.Close(); r.p.Close() })
	return pa, r.p
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) netip.AddrPort {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	noErr(t, err)
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return a
}

func TestConnectFailsWithoutPeer(t *testing.T) {
	a := listen(t, fastConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := a.Connect(ctx, Peer{Key: newKey(t), Candidates: []Candidate{{CandidateHost, deadAddr(t)}}, Dialer: true})
	isErr(t, err, ErrPunchFailed)
	isErr(t, err, context.DeadlineExceeded)
	_, err = a.Connect(ctx, Peer{Key: []byte("short"), Candidates: []Candidate{{CandidateHost, deadAddr(t)}}})
	isErr(t, err, ErrBadKey)
	_, err = a.Connect(context.Background(), Peer{Key: newKey(t)})
	isErr(t, err, ErrPunchFailed)
	// An IPv4 socket cannot reach an IPv6 candidate: refused at once rather than punched for the whole timeout.
	_, err = a.Connect(context.Background(), Peer{Key: newKey(t), Candidates: []Candidate{{CandidateHost, netip.MustParseAddrPort("[::1]:9")}}})
	isErr(t, err, ErrPunchFailed)
}

// A stranger's SYN (a plain anacrolix/utp socket dialling) never reaches the library: the dial goes unanswered on
// either side of an established path, and no stream appears.
func TestStrangerSYNDropped(t *testing.T) {
	t.Parallel()
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	stranger, err := utp.NewSocket("udp4", "127.0.0.1:0")
	noErr(t, err)
	defer stranger.CloseNow()
	for _, target := range []*Transport{a, b} {
		dropsBefore := target.utpDrops.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
		_, err := stranger.DialContext(ctx, "", target.LocalAddr().String())
		cancel()
		check(t, err != nil, "the stranger's dial to %v succeeded", target.LocalAddr())
		check(t, target.utpDrops.Load() > dropsBefore, "no SYN dropped at the demultiplexer")
	}
	for _, p := range []*Path{pa, pb} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := p.AcceptStream(ctx)
		cancel()
		isErr(t, err, context.DeadlineExceeded)
	}
	// The path still works.
	c1, c2 := openPair(t, pa, pb)
	exchange(t, c1, c2, 1000)
}

// A SYN whose source address is the peer's (spoofed, simulated here by letting the stranger's address through the
// demultiplexer) reaches the library, but its connection carries no stream without the session key, and a genuine
// hello cannot be replayed.
func TestSpoofedSYNNeedsKey(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	stranger, err := utp.NewSocket("udp4", "127.0.0.1:0")
	noErr(t, err)
	defer stranger.CloseNow()
	spoofed := stranger.Addr().(*net.UDPAddr).AddrPort()
	noErr(t, b.establish(pb, spoofed))

	hello := func(key sessionKeys, counter uint64) []byte {
		h := binary.BigEndian.AppendUint64(nil, pa.instance)
		h = binary.BigEndian.AppendUint64(h, counter)
		h = append(h, purposeOpen)
		h = binary.BigEndian.AppendUint64(h, 0)
		return newMacer(key.stream).sum(h, []byte("hello"), h)
	}
	// try dials from the spoofed address, sends h, reads the answer and, with confirm, sends the window frame that
	// completes the handshake.
	try := func(h []byte, confirm bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := stranger.DialContext(ctx, "", b.LocalAddr().String())
		noErr(t, err, "uTP dial from the (spoofed) peer address")
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(h); err != nil {
			return err
		}
		ack := make([]byte, macSize)
		if _, err = io.ReadFull(c, ack); err != nil || !confirm {
			return err
		}
		_, err = c.Write([]byte{frameWindow, 0, 4, 0, 1, 0, 0})
		time.Sleep(50 * time.Millisecond) // let it arrive before Close
		return err
	}
	accepted := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		s, err := pb.AcceptStream(ctx)
		if err == nil {
			s.Close()
		}
		return err == nil
	}

	wrongKey := deriveKeys(newKey(t))
	check(t, try(hello(wrongKey, pa.nextCounter()), true) != nil, "a hello with the wrong key was answered")
	check(t, !accepted(), "a hello with the wrong key made a stream")
	garbage := make([]byte, helloSize)
	check(t, try(garbage, true) != nil, "garbage was answered")
	check(t, !accepted(), "garbage made a stream")

	// A dialler that gives up after its hello (no window frame follows the answer) leaves no stream behind.
	noErr(t, try(hello(pa.keys, pa.nextCounter()), false), "a genuine hello")
	check(t, !accepted(), "an abandoned handshake made a stream")

	// Sanity: with the key and a fresh counter the same route works, so the refusals above were the checks.
	fresh := hello(pa.keys, pa.nextCounter())
	noErr(t, try(fresh, true), "a genuine hello")
	check(t, accepted(), "a genuine hello made no stream")
	check(t, try(fresh, true) != nil, "a replayed hello was answered")
	check(t, !accepted(), "a replayed hello made a stream")
}

// Forged control packets get no answer and do not complete a punch; a correctly keyed one does get an answer, so
// the silence is the MAC check at work.
func TestForgedPunchIgnored(t *testing.T) {
	b := listen(t, fastConfig())
	attacker, err := net.ListenPacket("udp4", "127.0.0.1:0")
	noErr(t, err)
	defer attacker.Close()
	key := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	connErr := make(chan error, 1)
	go func() {
		_, err := b.Connect(ctx, Peer{Key: key, Candidates: []Candidate{{CandidateHost, attacker.LocalAddr().(*net.UDPAddr).AddrPort()}}})
		connErr <- err
	}()
	to := b.LocalAddr()
	punch := func(k []byte, kind ctrlKind, body []byte, counter uint64) []byte {
		return newMacer(deriveKeys(k).control).appendCtrl(nil, ctrlPacket{kind: kind, instance: 42, counter: counter, body: body})
	}
	// answers reads what b sends for a while and counts its replies (b's own punches keep coming regardless).
	answers := func() (replies int) {
		buf := make([]byte, 2048)
		attacker.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		for {
			n, _, err := attacker.ReadFrom(buf)
			if err != nil {
				return replies
			}
			if p, err := parseCtrl(buf[:n]); err == nil && p.kind == kindPunchReply {
				replies++
			}
		}
	}
	wrongKey := punch(newKey(t), kindPunch, nil, 1)
	badMAC := punch(key, kindPunch, nil, 2)
	badMAC[len(badMAC)-1] ^= 1
	truncated := punch(key, kindPunch, nil, 3)[:30]
	for _, forged := range [][]byte{wrongKey, badMAC, truncated} {
		attacker.WriteTo(forged, to)
	}
	equal(t, answers(), 0, "replies to forged punches")
	// A forged reply claiming to answer b cannot complete the punch either.
	attacker.WriteTo(punch(newKey(t), kindPunchReply, make([]byte, 34), 4), to)
	attacker.WriteTo(punch(key, kindPunch, nil, 5), to)
	equal(t, answers(), 1, "replies to a genuine punch")
	err = <-connErr
	isErr(t, err, ErrPunchFailed)
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	for _, c := range []uint64{1, 2, 5, 4, 3, 100, 2000, 70} {
		check(t, w.accept(c), "fresh counter %d refused", c)
	}
	for _, c := range []uint64{0, 1, 5, 100, 2000, 70} {
		check(t, !w.accept(c), "replayed counter %d accepted", c)
	}
	check(t, w.accept(5000), "jump refused")
	check(t, !w.accept(5000-replayWidth), "counter behind the window accepted")
	check(t, w.accept(5000-replayWidth+1), "oldest counter in the window refused")
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
			isErr(t, rerr, ErrPathDead)
			isErr(t, werr, ErrPathDead)
			isErr(t, pa.Err(), ErrPathDead)
			check(t, elapsed < cfg.DeadPathTimeout+2*time.Second, "detected after %v", elapsed)
			_, err := pa.OpenStream(context.Background())
			isErr(t, err, ErrPathDead)
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
	isErr(t, err, ErrPathClosed)
	select {
	case <-pa.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("path not done")
	}
	check(t, time.Since(start) < 5*time.Second, "took %v", time.Since(start))
	check(t, !errors.Is(pa.Err(), ErrPathDead), "path error %v", pa.Err())
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
		isErr(t, err, ErrRoles)
		isErr(t, <-errc, ErrRoles)
		check(t, time.Since(start) < 2*time.Second, "took %v", time.Since(start))
		cancel()
	}
}

// Punching, open requests, stream handshakes and closes all survive heavy loss (10% each way): every control
// exchange is retried. (At 20% opens still succeed but can take 15 s: after a retransmitted SYN the library's
// inflated timers may time out a handshake packet, and the dial is redone.)
func TestControlUnderLoss(t *testing.T) {
	t.Parallel()
	lossy := func(seed uint64) netem.Config {
		return netem.Config{Out: netem.Impairment{Loss: 0.1}, In: netem.Impairment{Loss: 0.1}, Seed: seed}
	}
	cfg := fastConfig()
	cfg.DeadPathTimeout = 10 * time.Second
	cfg.DialTimeout = 300 * time.Millisecond // one SYN per attempt (the library resends after about 1 s)
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
