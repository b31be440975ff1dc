package congestion

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The controllers under test, by name.
var simControllers = []struct {
	name string
	new  func() Controller
}{
	{"bbr", func() Controller { return NewBBR(BBRConfig{}) }},
	{"cubic", func() Controller { return NewCubic(CubicConfig{}) }},
	{"ledbat", func() Controller { return NewLEDBAT(LEDBATConfig{}) }},
}

func simController(name string) func() Controller {
	for _, c := range simControllers {
		if c.name == name {
			return c.new
		}
	}
	panic("no controller " + name)
}

// simPaths are the paths the engine must do well on, each again with a CPU hog
// beside both peers.
func simPaths() []simPath {
	base := []simPath{
		{name: "lan", rate: 1e9, rtt: 500 * time.Microsecond, queue: 1000, duration: 1500 * time.Millisecond},
		{name: "20mbit-40pkt", rate: 20e6, rtt: 20 * time.Millisecond, queue: 40},
		{name: "80ms-1%loss", rate: 100e6, rtt: 80 * time.Millisecond, queue: 700, loss: 0.01},
		{name: "160ms-1%loss-both", rate: 100e6, rtt: 160 * time.Millisecond, queue: 1400, loss: 0.01, ackLoss: 0.01, duration: 30 * time.Second},
		{name: "1%loss-5%reorder", rate: 100e6, rtt: 40 * time.Millisecond, queue: 350, loss: 0.01, reorder: 0.05, reorderGap: 10 * time.Millisecond},
		{name: "100mbit-100ms", rate: 100e6, rtt: 100 * time.Millisecond, queue: 900},
	}
	var all []simPath
	for _, p := range base {
		if p.duration == 0 {
			p.duration = 15 * time.Second
		}
		all = append(all, p)
		p.cpuHog = true
		p.name += "+hog"
		all = append(all, p)
	}
	for i := range all {
		all[i].seed = uint64(i + 1)
	}
	return all
}

// minUtilisation is what each controller must achieve on each path; a path a
// controller is not meant for has none. BBR, the default, must fill every
// path; CUBIC, like kernel CUBIC, collapses under random loss.
var minUtilisation = map[string]map[string]float64{
	"bbr": {
		"lan": 0.95, "lan+hog": 0.95,
		"20mbit-40pkt": 0.95, "20mbit-40pkt+hog": 0.95,
		"80ms-1%loss": 0.95, "80ms-1%loss+hog": 0.95,
		// At 160 ms BBR keeps some 2,900 packets in flight, more than
		// uTP's selective ACK reaches past a gap (2,016): with 1% loss on
		// both links there is nearly always a gap, what arrived beyond it
		// is reported only when it closes, and a retransmission lost again
		// leaves the sender waiting for its timer. The engine shares that
		// limit; these floors hold what the controller does about it.
		"160ms-1%loss-both": 0.85, "160ms-1%loss-both+hog": 0.7,
		"1%loss-5%reorder": 0.95, "1%loss-5%reorder+hog": 0.95,
		"100mbit-100ms": 0.95, "100mbit-100ms+hog": 0.95,
	},
	"cubic": {
		"lan": 0.95, "lan+hog": 0.95,
		"20mbit-40pkt": 0.95, "20mbit-40pkt+hog": 0.95,
		"100mbit-100ms": 0.95, "100mbit-100ms+hog": 0.95,
	},
	"ledbat": {
		"lan":           0.95,
		"20mbit-40pkt":  0.95,
		"100mbit-100ms": 0.9,
	},
}

// TestSimPaths runs every controller over every path and checks utilisation,
// and for BBR that its queue stays well under the path's RTT where no busy CPU
// makes it burst. Run with -v for the table.
func TestSimPaths(t *testing.T) {
	for _, cc := range simControllers {
		for _, p := range simPaths() {
			t.Run(cc.name+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				r := runSim(p, simFlowSpec{newCC: cc.new})
				t.Logf("%-6s %-22s util %5.1f%% goodput %7.2f Mbit/s queue mean %v p95 %v retransmitted %.2f%%",
					cc.name, p.name, 100*r.utilisation, mbit(r.goodput[0]), r.meanQueue.Round(10*time.Microsecond),
					r.p95Queue.Round(10*time.Microsecond), 100*r.retransmits[0])
				if want, ok := minUtilisation[cc.name][p.name]; ok {
					assert.GreaterOrEqual(t, r.utilisation, want, "utilisation")
				}
				if cc.name == "bbr" && !p.cpuHog {
					assert.LessOrEqual(t, r.meanQueue, p.rtt/2, "mean queue, want under half the RTT %v", p.rtt)
				}
			})
		}
	}
}

// Jitter of up to 5 ms on every packet, which also reorders them, costs
// neither the default nor CUBIC their rate.
func TestSimJitter(t *testing.T) {
	p := simPath{rate: 50e6, rtt: 30 * time.Millisecond, queue: 200, jitter: 5 * time.Millisecond, duration: 30 * time.Second, seed: 5}
	for _, name := range []string{"bbr", "cubic"} {
		r := runSim(p, simFlowSpec{newCC: simController(name)})
		t.Logf("%s: util %.1f%%, queue %v, retransmitted %.2f%%", name, 100*r.utilisation, r.meanQueue.Round(10*time.Microsecond), 100*r.retransmits[0])
		assert.GreaterOrEqual(t, r.utilisation, 0.9, "%s: utilisation", name)
	}
}

// jain is Jain's fairness index of rates: 1 when all are equal, 1/n when one
// takes everything.
func jain(rates []float64) float64 {
	var sum, sq float64
	for _, r := range rates {
		sum += r
		sq += r * r
	}
	return sum * sum / (float64(len(rates)) * sq)
}

// Two flows of the same controller, the second starting later, share the
// bottleneck fairly and keep it full, whenever the second starts. At 100 ms
// with a BDP of buffer CUBIC converges over minutes (each congestion epoch
// lasts about 9 s), as kernel CUBIC does, so its case there runs for 200 s.
func TestSimFairness(t *testing.T) {
	shallow := simPath{name: "20mbit-40pkt", rate: 20e6, rtt: 20 * time.Millisecond, queue: 40, duration: 60 * time.Second, warmup: 20 * time.Second}
	long := simPath{name: "50mbit-100ms", rate: 50e6, rtt: 100 * time.Millisecond, queue: 450, duration: 80 * time.Second, warmup: 30 * time.Second}
	longCubic := long
	longCubic.duration, longCubic.warmup = 200*time.Second, 150*time.Second
	starts := []time.Duration{1700 * time.Millisecond, 5 * time.Second, 8500 * time.Millisecond}
	cases := []struct {
		cc     string
		path   simPath
		starts []time.Duration
	}{
		{"bbr", shallow, starts},
		{"bbr", long, starts},
		{"cubic", shallow, starts},
		{"cubic", longCubic, starts[1:2]},
	}
	for i, tc := range cases {
		for _, start := range tc.starts {
			t.Run(fmt.Sprintf("%s/%s/%v", tc.cc, tc.path.name, start), func(t *testing.T) {
				t.Parallel()
				p := tc.path
				p.seed = uint64(100 + i)
				r := runSim(p, simFlowSpec{newCC: simController(tc.cc)}, simFlowSpec{newCC: simController(tc.cc), start: start})
				j := jain(r.goodput)
				t.Logf("%s %s second flow at %v: %.2f + %.2f Mbit/s, utilisation %.1f%%, Jain %.3f, queue %v", tc.cc, p.name, start,
					mbit(r.goodput[0]), mbit(r.goodput[1]), 100*r.utilisation, j, r.meanQueue.Round(10*time.Microsecond))
				assert.GreaterOrEqual(t, j, 0.85, "Jain's index") // a 70/30 split
				assert.GreaterOrEqual(t, r.utilisation, 0.9, "utilisation")
			})
		}
	}
}

// LEDBAT on its own fills a deep-buffered link at about its target delay, and
// gives way to a CUBIC flow that starts beside it. Beside BBR, which keeps its
// queue well under LEDBAT's 100 ms target, LEDBAT sees too little delay to
// give way fully, but still takes the smaller share.
func TestSimLEDBATYields(t *testing.T) {
	p := simPath{rate: 20e6, rtt: 40 * time.Millisecond, queue: 400, duration: 60 * time.Second, warmup: 20 * time.Second, seed: 9}
	r := runSim(p, simFlowSpec{newCC: simController("ledbat")})
	t.Logf("alone: %.2f Mbit/s, queue %v", mbit(r.goodput[0]), r.meanQueue.Round(time.Millisecond))
	assert.GreaterOrEqual(t, r.utilisation, 0.95, "alone: utilisation")
	assert.LessOrEqual(t, r.meanQueue, DefaultLEDBATTarget*11/10, "alone: mean queue, want about the target %v", DefaultLEDBATTarget)
	assert.GreaterOrEqual(t, r.meanQueue, DefaultLEDBATTarget/2, "alone: mean queue, want about the target %v", DefaultLEDBATTarget)
	for _, tc := range []struct {
		other    string
		maxShare float64
	}{{"cubic", 0.1}, {"bbr", 0.45}} {
		r := runSim(p, simFlowSpec{newCC: simController("ledbat")}, simFlowSpec{newCC: simController(tc.other), start: 5 * time.Second})
		share := r.goodput[0] / (r.goodput[0] + r.goodput[1])
		t.Logf("beside %s: ledbat %.2f, %s %.2f Mbit/s", tc.other, mbit(r.goodput[0]), tc.other, mbit(r.goodput[1]))
		assert.LessOrEqual(t, share, tc.maxShare, "beside %s: LEDBAT's share of the link", tc.other)
		assert.GreaterOrEqual(t, r.utilisation, 0.9, "beside %s: utilisation", tc.other)
	}
}

// A receiver clock running fast makes every one-way delay sample larger than
// the last; LEDBAT must not read the drift as a growing queue (nor, running
// slow, as a shrinking one).
func TestSimLEDBATClockDrift(t *testing.T) {
	for _, drift := range []float64{500e-6, -500e-6} {
		p := simPath{rate: 5e6, rtt: 40 * time.Millisecond, queue: 400, duration: 5 * time.Minute, warmup: 4 * time.Minute, clockDrift: drift, seed: 11}
		r := runSim(p, simFlowSpec{newCC: simController("ledbat")})
		t.Logf("last minute at %+.0f ppm drift: %.2f Mbit/s, queue %v", drift*1e6, mbit(r.goodput[0]), r.meanQueue.Round(time.Millisecond))
		assert.GreaterOrEqual(t, r.utilisation, 0.9, "%+.0f ppm: utilisation in the last minute", drift*1e6)
		assert.LessOrEqual(t, r.meanQueue, DefaultLEDBATTarget*12/10, "%+.0f ppm: mean queue, want about the target %v", drift*1e6, DefaultLEDBATTarget)
	}
}

// BBR, the default, beside CUBIC on each bottleneck: reported, not asserted
// beyond keeping the link full, since the share depends on the buffer's depth
// as it does between the kernel's two.
func TestSimBBRBesideCubic(t *testing.T) {
	for i, p := range []simPath{
		{name: "20mbit-40pkt", rate: 20e6, rtt: 20 * time.Millisecond, queue: 40},
		{name: "100mbit-100ms", rate: 100e6, rtt: 100 * time.Millisecond, queue: 900},
	} {
		p.duration, p.warmup, p.seed = 60*time.Second, 20*time.Second, uint64(200+i)
		r := runSim(p, simFlowSpec{newCC: simController("bbr")}, simFlowSpec{newCC: simController("cubic")})
		t.Logf("%s: bbr %.2f, cubic %.2f Mbit/s", p.name, mbit(r.goodput[0]), mbit(r.goodput[1]))
		assert.GreaterOrEqual(t, r.utilisation, 0.9, "%s: utilisation", p.name)
	}
}

func Example_simulatedPaths() {
	p := simPath{rate: 100e6, rtt: 80 * time.Millisecond, queue: 700, loss: 0.01, duration: 20 * time.Second, seed: 1}
	bbr := runSim(p, simFlowSpec{newCC: simController("bbr")})
	cubic := runSim(p, simFlowSpec{newCC: simController("cubic")})
	fmt.Printf("80 ms, 1%% loss: bbr fills more than 90%%: %v; cubic less than 10%%: %v\n", bbr.utilisation > 0.9, cubic.utilisation < 0.1)
	// Output: 80 ms, 1% loss: bbr fills more than 90%: true; cubic less than 10%: true
}
