package engine

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/congestion"
	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
	"github.com/stretchr/testify/require"
)

// idleConnMemoryLimit is the most heap an open, idle connection may keep, on
// each side.
const idleConnMemoryLimit = 4 << 10

// idleConnMemory opens n connections on p, exchanges size bytes each way on
// each, waits until nothing is in flight, and returns the heap they keep per
// connection (counting both ends). Two collections on either side of the
// measurement empty the buffer pools (a sync.Pool survives one), so only
// what the connections themselves hold is counted. It closes them after.
func idleConnMemory(tb testing.TB, p *pair, n, size int) float64 {
	tb.Helper()
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	conns := make([]*Conn, 0, 2*n)
	before := heap()
	for range n {
		ca, cb := p.connect(tb)
		msg := make([]byte, size)
		_, err := ca.Write(msg)
		require.NoError(tb, err)
		_, err = io.ReadFull(cb, msg)
		require.NoError(tb, err)
		_, err = cb.Write(msg)
		require.NoError(tb, err)
		_, err = io.ReadFull(ca, msg)
		require.NoError(tb, err)
		conns = append(conns, ca, cb)
	}
	waitIdle(tb, conns)
	after := heap()
	for _, c := range conns {
		c.Close()
	}
	for p.a.Stats().Conns+p.b.Stats().Conns > 0 {
		time.Sleep(time.Millisecond)
	}
	return float64(after-before) / float64(len(conns))
}

// waitIdle waits until nothing is in flight or pending on any of conns.
func waitIdle(tb testing.TB, conns []*Conn) {
	tb.Helper()
	for _, c := range conns {
		for {
			c.mu.Lock()
			idle := c.inflight == 0 && c.ackPending == 0 && len(c.q) == 0
			c.mu.Unlock()
			if idle {
				break
			}
			runtime.Gosched()
		}
	}
}

// An idle connection keeps no buffers: after a short exchange or a long one,
// with each congestion controller, what it holds is its own state, under
// idleConnMemoryLimit.
func TestIdleConnMemory(t *testing.T) {
	for _, cc := range []struct {
		name string
		new  func() congestion.Controller
	}{
		{"default", congestion.NewDefault},
		{"cubic", func() congestion.Controller { return congestion.NewCubic(congestion.CubicConfig{}) }},
		{"ledbat", func() congestion.Controller { return congestion.NewLEDBAT(congestion.LEDBATConfig{}) }},
	} {
		t.Run(cc.name, func(t *testing.T) {
			cfg := Config{TimeWait: time.Millisecond, NewController: cc.new}
			p := newPair(t, pairOpts{cfgA: cfg, cfgB: cfg})
			idleConnMemory(t, p, 20, 5) // warm up: the table, the timer heap and the pools reach their size
			for _, tc := range []struct{ conns, size int }{{200, 5}, {50, 256 << 10}} {
				got := idleConnMemory(t, p, tc.conns, tc.size)
				t.Logf("%.0f bytes per idle connection after %d bytes each way", got, tc.size)
				require.Less(t, got, float64(idleConnMemoryLimit),
					"heap kept per idle connection after %d bytes each way", tc.size)
			}
		})
	}
}

// An endpoint runs its connections' timers on one timer, with at most one
// goroutine of its own (the timerfd's, on Linux), which Close ends; its timers
// fire (the SYN is resent).
func TestEndpointGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	links := make([]*recordLink, 20)
	eps := make([]*Endpoint, len(links))
	for i := range eps {
		links[i] = &recordLink{keep: true}
		eps[i] = NewEndpoint(links[i], Config{InitialRTO: 20 * time.Millisecond})
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before+len(eps), "goroutines after %d endpoints", len(eps))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := eps[0].Dial(ctx) // nobody answers
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.GreaterOrEqual(t, len(links[0].packets(wire.Syn)), 2, "SYNs sent: the retransmission timer did not fire")
	for _, ep := range eps {
		require.NoError(t, ep.Close())
	}
	// Goroutines of earlier tests may still be ending; a loop, not
	// require.Eventually, which checks on a goroutine of its own.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines after the endpoints closed")
}
