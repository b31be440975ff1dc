package congestion

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// hotPath drives c through one send, one pacing question and one ACK a
// "packet", as the engine does at steady state on a 50 ms path.
type hotPath struct {
	c   Controller
	rtt RTTStats
	now time.Time
}

func newHotPath(c Controller) *hotPath {
	h := &hotPath{c: c, now: t0}
	h.rtt.UpdateRTT(50*time.Millisecond, t0)
	c.SetMaxDatagramSize(1200)
	return h
}

func (h *hotPath) step(i int) {
	h.now = h.now.Add(100 * time.Microsecond)
	inFlight := min(h.c.CongestionWindow(), 500*1200)
	h.c.PacingDelay(h.now, 1200, 0)
	h.c.OnPacketSent(h.now, inFlight, 1200)
	h.rtt.UpdateRTT(50*time.Millisecond+time.Duration(i%7)*time.Millisecond, h.now)
	h.c.OnAck(h.now, 1200, inFlight+1200, &h.rtt, time.Duration(i%5)*time.Millisecond)
	if i%997 == 0 {
		h.c.OnLoss(h.now, h.now.Add(-50*time.Millisecond), 1200, inFlight)
	}
}

var benchControllers = []struct {
	name string
	new  func() Controller
}{
	{"bbr", func() Controller { return NewBBR(BBRConfig{}) }},
	{"cubic", func() Controller { return NewCubic(CubicConfig{}) }},
	{"ledbat", func() Controller { return NewLEDBAT(LEDBATConfig{}) }},
}

// The hot path allocates nothing: the engine calls it for every packet.
func TestHotPathAllocatesNothing(t *testing.T) {
	for _, bc := range benchControllers {
		h := newHotPath(bc.new())
		i := 0
		assert.Zero(t, testing.AllocsPerRun(10000, func() { h.step(i); i++ }), "%s: allocations per packet", bc.name)
	}
}

// benchHotPath runs op for each controller after warming it up with ten
// thousand packets, so the benchmark sees its steady state.
func benchHotPath(b *testing.B, op func(h *hotPath, i int)) {
	for _, bc := range benchControllers {
		b.Run(bc.name, func(b *testing.B) {
			h := newHotPath(bc.new())
			for i := 0; i < 10000; i++ {
				h.step(i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				op(h, i)
				i++
			}
		})
	}
}

func BenchmarkOnAck(b *testing.B) {
	benchHotPath(b, func(h *hotPath, i int) {
		h.now = h.now.Add(100 * time.Microsecond)
		h.c.OnAck(h.now, 1200, 400*1200, &h.rtt, time.Duration(i%5)*time.Millisecond)
	})
}

func BenchmarkOnPacketSent(b *testing.B) {
	benchHotPath(b, func(h *hotPath, _ int) {
		h.now = h.now.Add(100 * time.Microsecond)
		h.c.OnPacketSent(h.now, 400*1200, 1200)
	})
}

func BenchmarkPacingDelay(b *testing.B) {
	benchHotPath(b, func(h *hotPath, _ int) {
		h.now = h.now.Add(time.Microsecond)
		h.c.PacingDelay(h.now, 1200, 0)
	})
}

// BenchmarkSimulator is the cost of the simulator itself: one simulated
// second of a 100 Mbit/s, 80 ms path at 1% loss under BBR.
func BenchmarkSimulator(b *testing.B) {
	p := simPath{rate: 100e6, rtt: 80 * time.Millisecond, queue: 700, loss: 0.01, duration: time.Second, warmup: time.Millisecond, seed: 1}
	for b.Loop() {
		runSim(p, simFlowSpec{newCC: simController("bbr")})
	}
}
