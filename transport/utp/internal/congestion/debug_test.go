package congestion

import (
	"os"
	"testing"
	"time"
)

type tracingCC struct {
	Controller
	t    *testing.T
	last time.Time
}

func (c *tracingCC) OnAck(now time.Time, acked, prior int, rtt *RTTStats, d time.Duration) {
	c.Controller.OnAck(now, acked, prior, rtt, d)
	if now.Sub(c.last) > 500*time.Millisecond {
		c.last = now
		if b, ok := c.Controller.(*bbr); ok {
			c.t.Logf("%v mode %d bw %.1f Mbit minRTT %v srtt %v cwnd %.0f pkts hi %.0f infl %d gain %.2f extra %.0f %.0f", now.Sub(t0), b.mode, b.bw()*8/1e6, b.minRTT, rtt.SmoothedRTT(), b.cwnd/1400, b.inflightHi/1400, prior/1400, b.pacingGain, b.extraAcked[0]/1400, b.extraAcked[1]/1400)
		}
	}
}

func TestDebugPath(t *testing.T) {
	name := os.Getenv("SIMPATH")
	if name == "" {
		t.Skip()
	}
	for _, p := range simPaths() {
		if p.name == name {
			r := runSim(p, simFlowSpec{newCC: func() Controller { return &tracingCC{Controller: NewBBR(BBRConfig{}), t: t} }})
			t.Logf("util %.1f%%", 100*r.utilisation)
		}
	}
}
