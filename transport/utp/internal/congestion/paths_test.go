package congestion

import (
	"testing"
	"time"
)

// The paths the controllers must do well on, each again with a CPU hog beside
// both peers.
func simPaths() []simPath {
	base := []simPath{
		{name: "lan", rate: 1e9, rtt: 500 * time.Microsecond, queue: 1000, duration: 5 * time.Second},
		{name: "20mbit-40pkt", rate: 20e6, rtt: 20 * time.Millisecond, queue: 40},
		{name: "80ms-1%loss", rate: 100e6, rtt: 80 * time.Millisecond, queue: 700, loss: 0.01},
		{name: "160ms-1%loss-both", rate: 100e6, rtt: 160 * time.Millisecond, queue: 1400, loss: 0.01, ackLoss: 0.01, duration: 60 * time.Second},
		{name: "1%loss-5%reorder", rate: 100e6, rtt: 40 * time.Millisecond, queue: 350, loss: 0.01, reorder: 0.05, reorderGap: 10 * time.Millisecond},
		{name: "100mbit-100ms", rate: 100e6, rtt: 100 * time.Millisecond, queue: 900},
	}
	var all []simPath
	for _, p := range base {
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

func TestSimTable(t *testing.T) {
	ccs := []struct {
		name string
		new  func() Controller
	}{
		{"cubic", func() Controller { return NewCubic(CubicConfig{}) }},
		{"bbr", func() Controller { return NewBBR(BBRConfig{}) }},
	}
	for _, p := range simPaths() {
		for _, cc := range ccs {
			start := time.Now()
			r := runSim(p, simFlowSpec{newCC: cc.new})
			t.Logf("%-22s %-6s util %5.1f%% goodput %7.2f Mbit/s queue mean %v p95 %v retx %.2f%% (%v)", p.name, cc.name,
				100*r.utilisation, mbit(r.goodput[0]), r.meanQueue.Round(10*time.Microsecond), r.p95Queue.Round(10*time.Microsecond), 100*r.retransmits[0], time.Since(start).Round(time.Millisecond))
		}
	}
}
