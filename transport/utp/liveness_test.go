package utp

import (
	"crypto/sha256"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/engine"
	"github.com/stretchr/testify/require"
)

// An idle path and an idle stream outlive DeadPathTimeout many times over: probes keep the path alive (and the NAT
// mappings open), and an idle stream has no timeout of its own.
func TestIdleKeepalive(t *testing.T) {
	t.Parallel()
	cfg := fastConfig() // keepalive 200 ms, dead after 2 s
	a, b := listen(t, cfg), listen(t, cfg)
	pa, pb := connectPair(t, a, b)
	c1, c2 := openPair(t, pa, pb)
	probed := func(p *Path) time.Time {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.lastProbe
	}
	before1, before2 := probed(pa), probed(pb)
	time.Sleep(2*cfg.DeadPathTimeout + 500*time.Millisecond)
	require.NoError(t, pa.Err(), "dialler path")
	require.NoError(t, pb.Err(), "other path")
	require.True(t, probed(pa).After(before1), "no probes on an idle path (dialler)")
	require.True(t, probed(pb).After(before2), "no probes on an idle path (other)")
	exchange(t, c1, c2, 64<<10)
}

func TestStreamDeadlines(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	c1, c2 := openPair(t, pa, pb)

	c1.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := c1.Read(make([]byte, 10))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.ErrorAs(t, err, &ne, "deadline error is not a net.Error")
	require.True(t, ne.Timeout(), "deadline error %v is not a timeout", err)
	require.True(t, time.Since(start) < time.Second, "read deadline took %v", time.Since(start))

	// A past deadline fails at once; clearing it makes the stream usable again.
	c1.SetReadDeadline(time.Now().Add(-time.Second))
	_, err = c1.Read(make([]byte, 10))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	c1.SetReadDeadline(time.Time{})
	_, err = c2.Write([]byte("after"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(c1, buf)
	require.NoError(t, err)
	require.Equal(t, "after", string(buf))

	// A deadline moved into the past wakes a blocked Read.
	go func() {
		time.Sleep(50 * time.Millisecond)
		c1.SetReadDeadline(time.Now())
	}()
	_, err = c1.Read(buf)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

// The receive window bounds what a writer can get ahead of a reader that does not read; the writer blocks (here
// until its deadline) instead of the uTP connection stalling, and everything arrives once the reader reads.
func TestSlowReaderFlowControl(t *testing.T) {
	cfg := fastConfig()
	cfg.StreamWindow = 256 << 10
	a, b := listen(t, cfg), listen(t, cfg)
	pa, pb := connectPair(t, a, b)
	w, r := openPair(t, pa, pb)
	data := randomBytes(t, 1<<20)
	w.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	n, err := w.Write(data)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	// The writer's side may queue up to the engine's minimum send buffer (256 KiB) beyond what the window let out.
	require.True(t, n <= cfg.StreamWindow+256<<10, "wrote %d bytes ahead of a %d-byte window", n, cfg.StreamWindow)
	buffered := r.(*engine.Conn).Stats().ReceiveBuffered
	require.True(t, buffered <= cfg.StreamWindow, "%d bytes buffered at the reader, window %d", buffered, cfg.StreamWindow)
	require.True(t, buffered >= cfg.StreamWindow/2, "%d bytes buffered at the reader, window %d", buffered, cfg.StreamWindow)
	w.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(data[n:])
		if err == nil {
			err = w.Close()
		}
		done <- err
	}()
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.True(t, string(got) == string(data), "got %d bytes, want %d identical", len(got), len(data))
}

func TestWritesAfterPeerClose(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	c1, c2 := openPair(t, pa, pb)
	require.NoError(t, c2.Close())
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := c1.Write([]byte("hello"))
		if err != nil {
			require.ErrorIs(t, err, ErrStreamClosed)
			break
		}
		require.True(t, time.Now().Before(deadline), "writes still accepted 3 s after the peer closed")
		time.Sleep(10 * time.Millisecond)
	}
	_, err := c1.Read(make([]byte, 1))
	require.True(t, err == io.EOF, "error %v, want io.EOF itself", err)
}

// Closing streams, paths and transports leaves no goroutine of ours behind.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		a, err := Listen("udp4", "127.0.0.1:0", fastConfig())
		require.NoError(t, err)
		defer a.Close()
		b, err := Listen("udp4", "127.0.0.1:0", fastConfig())
		require.NoError(t, err)
		defer b.Close()
		pa, pb := connectPair(t, a, b)
		for i := range 4 {
			opener, acceptor := pa, pb
			if i%2 == 1 {
				opener, acceptor = pb, pa
			}
			c1, c2 := openPair(t, opener, acceptor)
			exchange(t, c1, c2, 10<<10)
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	n := runtime.NumGoroutine()
	buf := make([]byte, 1<<20)
	require.LessOrEqual(t, n, before, "goroutines after vs before:\n%s", buf[:runtime.Stack(buf, true)])
}

// A reader that pauses for many retransmission timeouts does not kill the writer's stream: the closed receive window
// holds the writer back, its probes are flow control, and everything arrives once the reader reads.
func TestReaderPauseBeyondAckTimeout(t *testing.T) {
	t.Parallel()
	cfg := Config{StreamWindow: 256 << 10}
	a, b := listen(t, cfg), listen(t, cfg)
	pa, pb := connectPair(t, a, b)
	w, r := openPair(t, pa, pb)
	data := randomBytes(t, 3<<20)
	werr := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		if err == nil {
			err = w.Close()
		}
		werr <- err
	}()
	time.Sleep(10 * time.Second)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, <-werr, "writer")
	require.True(t, string(got) == string(data), "got %d bytes, want %d identical", len(got), len(data))
}

// probeCounter wraps a socket: it counts the probes sent on it (sealing makes datagrams opaque, but no other has a
// probe's length: the kind and the flags) and, while deaf, drops every datagram it reads.
type probeCounter struct {
	net.PacketConn
	probes atomic.Int64
	deaf   atomic.Bool
}

func (pc *probeCounter) WriteTo(b []byte, to net.Addr) (int, error) {
	if len(b) == sealedOverhead+2 {
		pc.probes.Add(1)
	}
	return pc.PacketConn.WriteTo(b, to)
}

func (pc *probeCounter) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := pc.PacketConn.ReadFrom(b)
		if err != nil || !pc.deaf.Load() {
			return n, from, err
		}
	}
}

// While a stream sends, its path probes every BusyProbeInterval as long as the peer's acknowledgements come, and
// every ProbeInterval as soon as they stop with packets in flight, long before a probe could count as lost; the
// stream survives the outage byte for byte.
func TestBusyPathProbes(t *testing.T) {
	cfg := fastConfig()
	cfg.ProbeInterval, cfg.BusyProbeInterval = 5*time.Millisecond, 60*time.Millisecond
	sock, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	pc := &probeCounter{PacketConn: sock}
	a, err := NewTransport(pc, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	pa, pb := connectPair(t, a, listen(t, cfg))
	w, r := openPair(t, pa, pb)
	require.NoError(t, w.SetWriteDeadline(time.Now().Add(time.Minute)))
	require.NoError(t, r.SetReadDeadline(time.Now().Add(time.Minute)))

	// The writer sends until stopped; both ends hash what went through.
	chunk := randomBytes(t, 64<<10)
	type result struct {
		n   int64
		sum [sha256.Size]byte
	}
	got, sent := make(chan result, 1), make(chan result, 1)
	go func() {
		h := sha256.New()
		n, _ := io.Copy(h, r)
		got <- result{n, [sha256.Size]byte(h.Sum(nil))}
	}()
	stop := make(chan struct{})
	go func() {
		h := sha256.New()
		var n int64
		for {
			select {
			case <-stop:
				sent <- result{n, [sha256.Size]byte(h.Sum(nil))}
				return
			default:
			}
			k, err := w.Write(chunk)
			h.Write(chunk[:k])
			n += int64(k)
			if err != nil {
				sent <- result{n, [sha256.Size]byte(h.Sum(nil))}
				return
			}
		}
	}()

	time.Sleep(300 * time.Millisecond) // the stream is under way
	before := pc.probes.Load()
	time.Sleep(time.Second)
	busy := pc.probes.Load() - before
	t.Logf("probes in 1 s of sending: %d", busy)
	require.LessOrEqual(t, busy, int64(40), "probes in 1 s while the peer acknowledges (BusyProbeInterval 60 ms)")
	require.GreaterOrEqual(t, busy, int64(5), "probes in 1 s while the peer acknowledges: Path.RTT goes stale")

	// Probes already out may be lost from 200 ms on (probeLossAfter); until then only the packets in flight that
	// the peer no longer acknowledges can make the path probe fast.
	pc.deaf.Store(true)
	before = pc.probes.Load()
	time.Sleep(190 * time.Millisecond)
	deaf := pc.probes.Load() - before
	pc.deaf.Store(false)
	t.Logf("probes in the first 190 ms of an outage: %d", deaf)
	require.GreaterOrEqual(t, deaf, int64(10), "probes in the first 190 ms of an outage (ProbeInterval 5 ms)")

	close(stop)
	s := <-sent
	require.NoError(t, w.Close())
	g := <-got
	require.Equal(t, s.n, g.n, "bytes received")
	require.True(t, s.sum == g.sum, "the bytes received differ from those sent")
}
