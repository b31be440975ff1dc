package utp

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPredictPorts(t *testing.T) {
	cases := []struct {
		name     string
		observed []uint16
		n        int
		want     []uint16
	}{
		{"step of one", []uint16{40000, 40001}, 4, []uint16{40002, 40003, 40004, 40005}},
		{"step of two, three observations", []uint16{5000, 5002, 5004}, 3, []uint16{5006, 5008, 5010}},
		{"other hosts took ports between: the smallest step", []uint16{5000, 5003, 5004}, 2, []uint16{5005, 5006}},
		{"downwards", []uint16{30010, 30009}, 3, []uint16{30008, 30007, 30006}},
		{"stops at the top of the range", []uint16{65533, 65534}, 5, []uint16{65535}},
		{"stops above the privileged ports", []uint16{1026, 1025}, 5, []uint16{1024}},
		{"the largest step that looks sequential", []uint16{10000 + maxSequentialStep, 10000 + 2*maxSequentialStep}, 1, []uint16{10000 + 3*maxSequentialStep}},
		{"a step too large: random", []uint16{10000, 10001 + maxSequentialStep}, 4, nil},
		{"random ports", []uint16{40000, 12345}, 4, nil},
		{"steps of both signs", []uint16{5000, 5002, 5001}, 4, nil},
		{"the same port twice: endpoint-independent, nothing to predict", []uint16{5000, 5000}, 4, nil},
		{"one observation", []uint16{5000}, 4, nil},
		{"none wanted", []uint16{5000, 5001}, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, predictPorts(c.observed, c.n))
		})
	}
}

func TestProbeOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t.Run("predicted first, then random, each once", func(t *testing.T) {
		order := probeOrder([]uint16{40000, 40001}, 2000, rng)
		require.Len(t, order, 2000)
		require.Equal(t, predictPorts([]uint16{40000, 40001}, maxPredictedPorts), order[:maxPredictedPorts])
		seen := map[uint16]bool{}
		for _, p := range order {
			require.GreaterOrEqual(t, p, uint16(1024), "a privileged port")
			require.False(t, seen[p], "port %d twice", p)
			seen[p] = true
		}
	})
	t.Run("random only without a sequence", func(t *testing.T) {
		order := probeOrder([]uint16{40000, 12345}, 1000, rng)
		require.Len(t, order, 1000)
		require.False(t, slices.Contains(order[:10], 12346) && slices.Contains(order[:10], 12347))
	})
	t.Run("the budget is bounded by the port range", func(t *testing.T) {
		order := probeOrder(nil, 1<<20, rng)
		require.Len(t, order, maxHardNATProbes)
		slices.Sort(order)
		require.Equal(t, uint16(1024), order[0])
		require.Equal(t, uint16(65535), order[len(order)-1])
	})
}

func TestHardNATConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	require.Equal(t, 256, c.HardNATSockets)
	require.Equal(t, 2000, c.HardNATProbes)
	require.Equal(t, 2*time.Millisecond, c.HardNATProbeInterval)
	require.Equal(t, 15*time.Second, c.HardNATTimeout)
	c = Config{HardNATSockets: 1 << 20, HardNATProbes: 1 << 20}.withDefaults()
	require.Equal(t, maxHardNATSockets, c.HardNATSockets)
	require.Equal(t, maxHardNATProbes, c.HardNATProbes)
	c = Config{HardNATSockets: -1, HardNATProbes: -1}.withDefaults()
	require.Negative(t, c.HardNATSockets)
	require.Negative(t, c.HardNATProbes)
}

// portRestricted is a socket behind a port-restricted cone NAT, as far as what it lets in goes: only datagrams from
// an address:port it has sent to. Nothing from unreachable gets in: the hard side's main socket, whose mapping
// towards us a real per-destination NAT would give a port no one knows.
type portRestricted struct {
	net.PacketConn
	unreachable netip.AddrPort
	mu          sync.Mutex
	sentTo      map[netip.AddrPort]bool
	dropped     int
}

func (c *portRestricted) WriteTo(b []byte, to net.Addr) (int, error) {
	ap, _ := addrPortOf(to)
	c.mu.Lock()
	c.sentTo[ap] = true
	c.mu.Unlock()
	return c.PacketConn.WriteTo(b, to)
}

func (c *portRestricted) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, from, err
		}
		ap, _ := addrPortOf(from)
		c.mu.Lock()
		ok := c.sentTo[ap] && ap != c.unreachable
		if !ok {
			c.dropped++
		}
		c.mu.Unlock()
		if ok {
			return n, from, nil
		}
	}
}

// freePortRange finds n consecutive free UDP ports on 127.0.0.1.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(20000)
		var pcs []net.PacketConn
		for i := range n {
			pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(base+i)).String())
			if err != nil {
				break
			}
			pcs = append(pcs, pc)
		}
		for _, pc := range pcs {
			pc.Close()
		}
		if len(pcs) == n {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// hardNATPair is a path between a Transport whose NAT maps per destination (hard: its extra sockets bind the ports
// from auxBase) and one behind a port-restricted filter (easy), on loopback.
type hardNATPair struct {
	hard, easy   *Transport
	hp, ep       *Path
	filter       *portRestricted
	auxBase      int
	hardRelay    *Relay
	easyRelay    *Relay
	easyAddr     netip.AddrPort
	extraSockets int
}

// newHardNATPair connects a hardNATPair with the given number of extra sockets. The hard side's socket binds port
// base+1 and its STUN observations are base and base+1, which predict the ports from base+2 on; the first misses of
// them are free ports, the extra sockets bind the ones after, so the easy side's probes (all predicted: no random
// port on this machine is ever probed) hit after misses probes. With turn (a TURN server's address) each side also
// has a relay, and the path starts on it. Neither side can take the other role (which would probe random ports of
// this machine). With stunMissed, STUN showed the hard side's NAT as endpoint-independent
// (on base) and its candidate says so: only punches tell.
func newHardNATPair(t *testing.T, sockets, misses int, probeInterval time.Duration, turn string, stunMissed bool) *hardNATPair {
	t.Helper()
	base := freePortRange(t, 2+misses+sockets)
	hp := &hardNATPair{auxBase: base + 2 + misses, extraSockets: sockets}
	lo := netip.MustParseAddr("127.0.0.1")
	var err error
	hp.hard, err = Listen("udp4", netip.AddrPortFrom(lo, uint16(base+1)).String(),
		Config{HardNATSockets: sockets, auxPortBase: hp.auxBase, HardNATTimeout: 20 * time.Second, HardNATProbes: -1})
	require.NoError(t, err)
	t.Cleanup(func() { hp.hard.Close() })
	hardCands := []Candidate{
		{Kind: CandidateSrflx, Addr: netip.AddrPortFrom(lo, uint16(base)), Mapping: MappingPerDestination},
		{Kind: CandidateSrflx, Addr: netip.AddrPortFrom(lo, uint16(base+1)), Mapping: MappingPerDestination},
	}
	hp.hard.nat.Store(&NATReport{Reflexive: hardCands[0].Addr, Mapping: MappingPerDestination})
	if stunMissed {
		hardCands = []Candidate{{Kind: CandidateSrflx, Addr: hardCands[0].Addr, Mapping: MappingEndpointIndependent}}
		hp.hard.nat.Store(&NATReport{Reflexive: hardCands[0].Addr, Mapping: MappingEndpointIndependent})
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	hp.filter = &portRestricted{PacketConn: pc, sentTo: map[netip.AddrPort]bool{}, unreachable: hp.hard.LocalAddr().AddrPort()}
	hp.easy, err = NewTransport(hp.filter, Config{HardNATProbes: misses + sockets, HardNATProbeInterval: probeInterval, HardNATSockets: -1})
	require.NoError(t, err)
	t.Cleanup(func() { hp.easy.Close() })
	hp.easyAddr = hp.easy.LocalAddr().AddrPort()
	hp.easy.nat.Store(&NATReport{Reflexive: hp.easyAddr, Mapping: MappingEndpointIndependent})
	easyCands := []Candidate{{Kind: CandidateSrflx, Addr: hp.easyAddr, Mapping: MappingEndpointIndependent}}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if turn != "" {
		hp.hardRelay, err = hp.hard.AllocateRelay(ctx, relayConfig(t, turn, "hard", false))
		require.NoError(t, err)
		hp.easyRelay, err = hp.easy.AllocateRelay(ctx, relayConfig(t, turn, "easy", false))
		require.NoError(t, err)
		hardCands = append(hardCands, hp.hardRelay.Candidate())
		easyCands = append(easyCands, hp.easyRelay.Candidate())
	}
	key := newKey(t)
	var herr, eerr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		hp.hp, herr = hp.hard.Connect(ctx, Peer{Key: key, Candidates: easyCands, Dialer: true})
	}()
	go func() { defer wg.Done(); hp.ep, eerr = hp.easy.Connect(ctx, Peer{Key: key, Candidates: hardCands}) }()
	wg.Wait()
	require.NoError(t, herr, "hard side (easy side: %v)", eerr)
	require.NoError(t, eerr, "easy side")
	t.Cleanup(func() { hp.hp.Close(); hp.ep.Close() })
	return hp
}

// onExtraSocket checks that the path runs on a route from one of the hard side's extra sockets to the easy side,
// and returns the extra socket's address.
func (hp *hardNATPair) onExtraSocket(t *testing.T) netip.AddrPort {
	t.Helper()
	remote := hp.ep.RemoteAddr()
	require.GreaterOrEqual(t, int(remote.Port()), hp.auxBase, "the easy side's route: %v", remote)
	require.Less(t, int(remote.Port()), hp.auxBase+hp.extraSockets, "the easy side's route: %v", remote)
	cur, ok := hp.hp.loadRoute().(*socketRoute)
	require.True(t, ok, "the hard side's route is %v, not from an extra socket", hp.hp.loadRoute().id())
	require.Equal(t, remote.Port(), cur.s.port)
	require.Equal(t, hp.easyAddr, cur.peerAddr())
	return remote
}

// A path between a side whose NAT maps per destination and a port-restricted one is punched through an extra
// socket of the hard side: the hard side's punches from its extra sockets are dropped by the easy side's filter
// until the easy side's probe, aimed at a port predicted from the hard side's STUN observations, reaches one of
// them; that socket answers, the path runs on a route from it, moves a stream's bytes, and the other extra sockets
// are closed.
func TestHardNATPunchOverExtraSocket(t *testing.T) {
	const sockets = 4
	hp := newHardNATPair(t, sockets, 0, 10*time.Millisecond, "", false)
	remote := hp.onExtraSocket(t)
	hp.filter.mu.Lock()
	dropped := hp.filter.dropped
	hp.filter.mu.Unlock()
	require.Positive(t, dropped, "the easy side's filter let every punch in: the test proves nothing")

	// The extra sockets the path does not use are closed: their ports bind again.
	require.Eventually(t, func() bool {
		for i := range sockets {
			port := hp.auxBase + i
			if port == int(remote.Port()) {
				continue
			}
			pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(hp.easyAddr.Addr(), uint16(port)).String())
			if err != nil {
				return false
			}
			pc.Close()
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "unused extra sockets still open")

	// A stream's bytes cross byte-exact over the extra socket's route, which sends in batches now that it is the
	// path's.
	cur := hp.hp.loadRoute().(*socketRoute)
	require.NotNil(t, cur.s.batch.Load(), "the route's socket does not send in batches")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{9}).Read(data)
	accepted := make(chan []byte, 1)
	go func() {
		s, err := hp.ep.AcceptStream(ctx)
		if err != nil {
			accepted <- nil
			return
		}
		got, _ := io.ReadAll(s)
		s.Close()
		accepted <- got
	}()
	s, err := hp.hp.OpenStream(ctx)
	require.NoError(t, err)
	_, err = s.Write(data)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	got := <-accepted
	require.True(t, bytes.Equal(data, got), "bytes over the extra socket's route: got %d of %d", len(got), len(data))
	_, stillExtra := hp.hp.loadRoute().(*socketRoute)
	require.True(t, stillExtra, "the path left the extra socket's route: %v", hp.hp.loadRoute().id())

	// The route's own socket closes with the path.
	hp.hp.Close()
	require.Eventually(t, func() bool {
		pc, err := net.ListenPacket("udp4", remote.String())
		if err != nil {
			return false
		}
		pc.Close()
		return true
	}, 10*time.Second, 20*time.Millisecond, "the route's extra socket outlived the path")
}

// With a relay, the path starts on it at once; a stream that is moving bytes over the relay when the hard-NAT punch
// finds its extra socket moves with the path to the direct route, and arrives byte-exact.
func TestHardNATUpgradeFromRelayMidStream(t *testing.T) {
	turn, _ := startTURN(t)
	hp := newHardNATPair(t, 4, 20, 20*time.Millisecond, turn, false)
	for _, p := range []*Path{hp.hp, hp.ep} {
		require.True(t, p.Route().Relayed, "route at connect %+v, want the relay", p.Route())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var upgraded atomic.Bool
	var atUpgrade atomic.Int64 // bytes received when the route changed
	type result struct {
		n       int64
		matches bool
		err     error
	}
	read := make(chan result, 1)
	var received atomic.Int64
	go func() {
		s, err := hp.ep.AcceptStream(ctx)
		if err != nil {
			read <- result{err: err}
			return
		}
		defer s.Close()
		want := rand.NewChaCha8([32]byte{5})
		buf, exp := make([]byte, 64<<10), make([]byte, 64<<10)
		var r result
		r.matches = true
		for {
			n, err := s.Read(buf)
			_, _ = want.Read(exp[:n])
			r.matches = r.matches && bytes.Equal(buf[:n], exp[:n])
			r.n += int64(n)
			received.Store(r.n)
			if err == io.EOF {
				read <- r
				return
			}
			if err != nil {
				r.err = err
				read <- r
				return
			}
		}
	}()
	s, err := hp.hp.OpenStream(ctx)
	require.NoError(t, err)
	wrote := make(chan error, 1)
	var sent int64
	go func() {
		gen := rand.NewChaCha8([32]byte{5})
		buf := make([]byte, 64<<10)
		var after int64 // bytes written since the upgrade
		for after < 8<<20 && ctx.Err() == nil {
			_, _ = gen.Read(buf)
			if _, err := s.Write(buf); err != nil {
				wrote <- err
				return
			}
			sent += int64(len(buf))
			if upgraded.Load() {
				after += int64(len(buf))
			}
		}
		wrote <- s.Close()
	}()
	waitRoute(t, hp.hp, false, 30*time.Second)
	atUpgrade.Store(received.Load())
	upgraded.Store(true)
	waitRoute(t, hp.ep, false, 30*time.Second)
	require.NoError(t, <-wrote)
	r := <-read
	require.NoError(t, r.err)
	require.Equal(t, sent, r.n, "bytes received")
	require.True(t, r.matches, "the bytes received differ from those sent")
	require.Positive(t, atUpgrade.Load(), "no byte crossed the relay before the upgrade")
	hp.onExtraSocket(t)
	t.Logf("%d bytes over the relay before the upgrade, %d in all", atUpgrade.Load(), r.n)
}

// When the extra socket's route dies (its NAT mapping gone), the path falls back on the relay and punches again: it
// is soon back on a direct route from a new extra socket, and a stream opened before carries on. (The easy side,
// whose idle path probes only every KeepaliveInterval, may move straight to the new route.)
func TestHardNATPunchesAgainAfterFallback(t *testing.T) {
	turn, _ := startTURN(t)
	hp := newHardNATPair(t, 4, 0, 10*time.Millisecond, turn, false)
	waitRoute(t, hp.hp, false, 30*time.Second)
	waitRoute(t, hp.ep, false, 30*time.Second)
	first := hp.onExtraSocket(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	accepted := make(chan net.Conn, 1)
	go func() {
		s, err := hp.ep.AcceptStream(ctx)
		if err == nil {
			accepted <- s
		}
		close(accepted)
	}()
	s, err := hp.hp.OpenStream(ctx)
	require.NoError(t, err)
	_, err = s.Write([]byte("o"))
	require.NoError(t, err)
	es, ok := <-accepted
	require.True(t, ok, "the easy side accepted no stream")
	defer es.Close()
	exchange := func(msg string) {
		t.Helper()
		_, err := s.Write([]byte(msg))
		require.NoError(t, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(es, got)
		require.NoError(t, err)
		require.Equal(t, msg, string(got))
	}
	got := make([]byte, 1)
	_, err = io.ReadFull(es, got)
	require.NoError(t, err)
	exchange("before")

	hp.hp.loadRoute().(*socketRoute).s.close() // the mapping is gone: nothing crosses that socket any more
	waitRoute(t, hp.hp, true, 30*time.Second)
	exchange("on the relay")
	waitRoute(t, hp.hp, false, 30*time.Second)
	waitRoute(t, hp.ep, false, 30*time.Second)
	again := hp.onExtraSocket(t)
	t.Logf("first route from %v, then from %v", first, again)
	exchange("direct again")
}

// A NAT that gave STUN's two addresses the same port but maps per destination all the same is found out by the
// punches through the relays: the peer sees our punches come from another port than our candidate names, and we see
// from its replies that it saw us there. Both then run the hard-NAT punch, and the path ends on an extra socket.
func TestHardNATFoundByPunches(t *testing.T) {
	turn, _ := startTURN(t)
	hp := newHardNATPair(t, 4, 0, 10*time.Millisecond, turn, true)
	waitRoute(t, hp.hp, false, 30*time.Second)
	waitRoute(t, hp.ep, false, 30*time.Second)
	hp.onExtraSocket(t)
	for _, p := range []*Path{hp.hp, hp.ep} {
		p.mu.Lock()
		hard := p.hard
		p.mu.Unlock()
		require.True(t, hard.running, "no hard-NAT punch ran")
		if p == hp.hp {
			require.True(t, hard.localHard, "the hard side did not learn its NAT maps per destination")
		} else {
			require.Equal(t, hp.hard.LocalAddr().AddrPort(), hard.peerHard, "what the easy side learnt of the peer's NAT")
		}
	}
}
