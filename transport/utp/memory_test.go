package utp

import (
	"context"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/engine"
	"github.com/stretchr/testify/require"
)

// idleStreamMemoryLimit is the most heap an open, idle stream may keep on a
// path, on each side.
const idleStreamMemoryLimit = 4 << 10

// idleStreamMemory opens n streams on p, exchanges a few bytes each way on
// each, waits until nothing is in flight, and returns the heap they keep per
// stream (counting both ends): the engine's connection and whatever the path
// adds for it. Two collections on either side of the measurement empty the
// buffer pools, so only what the streams hold is counted. It closes them
// after and waits until they are gone.
func idleStreamMemory(tb testing.TB, p *impairedPair, n int) float64 {
	tb.Helper()
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	streams := make([]net.Conn, 0, 2*n)
	before := heap()
	for range n {
		// OpenStream returns once the peer's engine answered; the stream
		// then waits for AcceptStream in the backlog.
		c, err := p.dialer.OpenStream(ctx)
		require.NoError(tb, err)
		s, err := p.acceptor.AcceptStream(ctx)
		require.NoError(tb, err)
		hello(tb, c, s)
		streams = append(streams, c, s)
	}
	for _, s := range streams {
		for {
			st := s.(*engine.Conn).Stats()
			if st.BytesInFlight == 0 && st.SendQueued == 0 {
				break
			}
			runtime.Gosched()
		}
	}
	after := heap()
	for _, s := range streams {
		s.Close()
	}
	// Closed streams linger (delivery, then time-wait): wait until they are
	// gone, so that the next measurement starts from none.
	for p.dialer.eng.Stats().Conns+p.acceptor.eng.Stats().Conns > 0 {
		require.NoError(tb, ctx.Err(), "closed streams still in the engines' tables")
		time.Sleep(10 * time.Millisecond)
	}
	return float64(after-before) / float64(len(streams))
}

// hello sends five bytes from c to s and back, and leaves both open.
func hello(tb testing.TB, c, s net.Conn) {
	tb.Helper()
	msg := []byte("hello")
	for _, d := range [][2]net.Conn{{c, s}, {s, c}} {
		_, err := d[0].Write(msg)
		require.NoError(tb, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(d[1], got)
		require.NoError(tb, err)
		require.Equal(tb, msg, got)
	}
}

// An idle stream costs its path no more than an idle engine connection does:
// under idleStreamMemoryLimit.
func TestIdleStreamMemory(t *testing.T) {
	p := newImpairedPair(t, fastConfig(), nil, nil)
	idleStreamMemory(t, p, 20) // warm up: tables and pools reach their size
	got := idleStreamMemory(t, p, 200)
	t.Logf("%.0f bytes per idle stream", got)
	require.Less(t, got, float64(idleStreamMemoryLimit), "heap kept per idle stream")
}

// BenchmarkIdleStreamMemory reports the heap an open, idle stream holds on
// each side of a path after a short exchange (see idleStreamMemory).
func BenchmarkIdleStreamMemory(b *testing.B) {
	p := newImpairedPair(b, Config{}, nil, nil)
	idleStreamMemory(b, p, 20)
	b.ResetTimer()
	var sum float64
	for range b.N {
		sum += idleStreamMemory(b, p, 200)
	}
	b.ReportMetric(sum/float64(b.N), "B/stream")
}

// BenchmarkIdlePathMemory reports what an idle path with one idle stream
// costs each peer, beyond the shared Transport: heap (B/path) and goroutine
// stacks (stack-B/path), after a short exchange on the stream.
func BenchmarkIdlePathMemory(b *testing.B) {
	const n = 50
	ta, tb := listen(b, fastConfig()), listen(b, fastConfig())
	measure := func() (heap, stack int64) {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc), int64(ms.StackInuse)
	}
	var heapSum, stackSum float64
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		paths := make([]*Path, 0, 2*n)
		heap0, stack0 := measure()
		for range n {
			key := newKey(b)
			var wg sync.WaitGroup
			var pb *Path
			var errB error
			wg.Add(1)
			go func() {
				defer wg.Done()
				pb, errB = tb.Connect(ctx, Peer{Key: key, Candidates: ta.HostCandidates()})
			}()
			pa, err := ta.Connect(ctx, Peer{Key: key, Candidates: tb.HostCandidates(), Dialer: true})
			wg.Wait()
			require.NoError(b, err)
			require.NoError(b, errB)
			paths = append(paths, pa, pb)
			c, err := pa.OpenStream(ctx)
			require.NoError(b, err)
			s, err := pb.AcceptStream(ctx)
			require.NoError(b, err)
			hello(b, c, s)
		}
		time.Sleep(100 * time.Millisecond) // the last ACKs and route confirmations settle
		heap1, stack1 := measure()
		heapSum += float64(heap1-heap0) / float64(len(paths))
		stackSum += float64(stack1-stack0) / float64(len(paths))
		for _, p := range paths {
			p.Close()
		}
		cancel()
	}
	b.ReportMetric(heapSum/float64(b.N), "B/path")
	b.ReportMetric(stackSum/float64(b.N), "stack-B/path")
}
