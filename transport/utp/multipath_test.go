package utp

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/netem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Several peers on one Transport at once (a host serving several guests): each path has its own key and path ID,
// streams on all of them run concurrently and byte-exact, and closing one leaves the others working.
func TestSeveralPathsOneTransport(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	host := listen(t, cfg)
	const guests = 3
	hostPaths := make([]*Path, guests)
	guestPaths := make([]*Path, guests)
	var wg sync.WaitGroup
	for i := range guests {
		g := listen(t, cfg)
		hostDials := i%2 == 0 // the host's role differs per meeting
		key := newKey(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		wg.Add(2)
		go func() {
			defer wg.Done()
			var err error
			hostPaths[i], err = host.Connect(ctx, Peer{Key: key, Candidates: g.HostCandidates(), Dialer: hostDials})
			assert.NoError(t, err, "host connect %d", i)
		}()
		go func() {
			defer wg.Done()
			var err error
			guestPaths[i], err = g.Connect(ctx, Peer{Key: key, Candidates: host.HostCandidates(), Dialer: !hostDials})
			assert.NoError(t, err, "guest connect %d", i)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	transfers := func(which []int) {
		var wg sync.WaitGroup
		for _, i := range which {
			for dir := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					from, to := hostPaths[i], guestPaths[i]
					if dir == 1 {
						from, to = to, from
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					res, err := transferVerified(ctx, from, to, 2<<20, 32<<10, uint64(10*i+dir), nil)
					assert.NoError(t, err, "guest %d direction %d", i, dir)
					assert.Equal(t, res.sent, res.received, "guest %d direction %d: SHA-256 of received data", i, dir)
				}()
			}
		}
		wg.Wait()
	}
	transfers([]int{0, 1, 2})
	require.NoError(t, hostPaths[1].Close())
	select {
	case <-guestPaths[1].Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the guest of the closed path was not told")
	}
	transfers([]int{0, 2})
	st := host.Stats()
	require.Zero(t, st.Unopened, "datagrams that did not open at the host")
	require.Zero(t, st.Replayed, "replays at the host")
}

// A second path with the same key on one Transport is refused (it would share the path IDs).
func TestSameKeyTwiceOnOneTransport(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	key := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	go a.Connect(ctx, Peer{Key: key, Candidates: b.HostCandidates(), Dialer: true})
	time.Sleep(50 * time.Millisecond)
	_, err := a.Connect(ctx, Peer{Key: key, Candidates: b.HostCandidates(), Dialer: true})
	require.True(t, err != nil, "a second path with the same key was accepted")
}

// rebinder is a socket whose NAT mapping can change: after rebind, datagrams leave from a new port, and what arrives
// at the old one is lost (the old mapping is gone).
type rebinder struct {
	net.PacketConn // the first socket: its LocalAddr is the Transport's
	in             chan packet
	cur            atomic.Pointer[net.PacketConn]
	closeOnce      sync.Once
	done           chan struct{}
	extra          []net.PacketConn
}

type packet struct {
	b    []byte
	from net.Addr
}

func newRebinder(t testing.TB) *rebinder {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	r := &rebinder{PacketConn: pc, in: make(chan packet, 1024), done: make(chan struct{})}
	r.cur.Store(&pc)
	go r.read(pc)
	return r
}

func (r *rebinder) read(pc net.PacketConn) {
	for {
		buf := make([]byte, 65536)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if *r.cur.Load() != pc {
			continue // the old mapping is gone
		}
		select {
		case r.in <- packet{buf[:n], from}:
		case <-r.done:
			return
		}
	}
}

// rebind moves the mapping to a new port and returns it.
func (r *rebinder) rebind(t testing.TB) net.Addr {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	r.extra = append(r.extra, pc)
	r.cur.Store(&pc)
	go r.read(pc)
	return pc.LocalAddr()
}

func (r *rebinder) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-r.in:
		return copy(b, p.b), p.from, nil
	case <-r.done:
		return 0, nil, net.ErrClosed
	}
}

func (r *rebinder) WriteTo(b []byte, to net.Addr) (int, error) { return (*r.cur.Load()).WriteTo(b, to) }

func (r *rebinder) Close() error {
	r.closeOnce.Do(func() { close(r.done) })
	for _, pc := range r.extra {
		pc.Close()
	}
	return r.PacketConn.Close()
}

// The peer's NAT rebinds its mapping in the middle of a transfer: the first authenticated datagram from the new
// address moves the path there, and the stream goes on byte-exact.
func TestNATRebindingMovesPath(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	a := listen(t, cfg)
	rb := newRebinder(t)
	b, err := NewTransport(rb, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	pa, pb := connectPair(t, a, b)
	require.Equal(t, b.LocalAddr().String(), pa.RemoteAddr().String(), "the path's remote before rebinding")
	var once sync.Once
	newAddr := make(chan net.Addr, 1)
	const size = 8 << 20
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Both directions: the rebound peer sends the data in one, only acknowledgements and probes in the other.
	for _, dir := range []struct{ from, to *Path }{{pb, pa}, {pa, pb}} {
		once = sync.Once{}
		res, err := transferVerified(ctx, dir.from, dir.to, size, 64<<10, 9, func(got int64) {
			if got >= size/3 {
				once.Do(func() { newAddr <- rb.rebind(t) })
			}
		})
		require.NoError(t, err, "transfer across the rebinding")
		require.True(t, res.n == size, "received %d bytes, want %d", res.n, size)
		require.True(t, res.sent == res.received, "SHA-256 of received data %x, sent %x", res.received, res.sent)
		moved := (<-newAddr).String()
		require.Equal(t, moved, pa.RemoteAddr().String(), "the path's remote after rebinding")
	}
	require.NoError(t, pa.Err())
	require.NoError(t, pb.Err())
}

// countingRoute is a second kind of route for the test: it carries datagrams over another route and counts them.
type countingRoute struct {
	via  route
	sent atomic.Int64
}

func (r *countingRoute) send(b []byte) error {
	r.sent.Add(1)
	return r.via.send(b)
}
func (r *countingRoute) id() routeID              { return routeID{kind: 99, addr: r.via.peerAddr()} }
func (r *countingRoute) peerAddr() netip.AddrPort { return r.via.peerAddr() }

// A route reported dead hands the path to another route the peer was heard on, and the path sends on it.
func TestRouteDeadFallsBack(t *testing.T) {
	cfg := fastConfig()
	cfg.DeadPathTimeout = 10 * time.Second // longer than the outage
	a := listen(t, cfg)
	b, nb := wrapped(t, cfg, netem.Config{})
	pa, pb := connectPair(t, a, b)
	// While b is silent, nothing it sends can move a's path back to the route it arrived on.
	nb.Outage(2 * time.Second)
	time.Sleep(100 * time.Millisecond) // what b sent before the outage has been read
	dead := pa.loadRoute()
	alt := &countingRoute{via: dead}
	pa.mu.Lock()
	pa.heard[alt.id()] = alt
	pa.mu.Unlock()
	pa.routeDead(dead, errRouteDead)
	require.True(t, pa.loadRoute() == route(alt), "the path did not move to the other route")
	// Reporting a route that is not the path's changes nothing.
	pa.routeDead(newDirectRoute(a, deadAddr(t)), errRouteDead)
	require.True(t, pa.loadRoute() == route(alt), "a dead route that was not in use moved the path")
	deadline := time.Now().Add(1500 * time.Millisecond) // within the outage: a probes every 200 ms
	for alt.sent.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.True(t, alt.sent.Load() > 0, "nothing was sent on the new route")
	c1, c2 := openPair(t, pa, pb)
	exchange(t, c1, c2, 64<<10)
}
