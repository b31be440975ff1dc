package congestion

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzControllers drives every controller with an arbitrary sequence of
// events, times and sizes, as a confused or hostile peer could make the engine
// report them, and checks that the window stays within its bounds and the
// pacer's answers stay sane.
func FuzzControllers(f *testing.F) {
	f.Add([]byte{0, 10, 1, 20, 2, 30, 3, 40, 4, 5, 6, 7})
	f.Add([]byte{1, 255, 1, 255, 2, 0, 3, 0, 1, 1, 4, 0, 5, 200})
	f.Fuzz(func(t *testing.T, ops []byte) {
		for _, bc := range benchControllers {
			c := bc.new()
			var rtt RTTStats
			now := t0
			inFlight := 0
			for i := 0; i+1 < len(ops); i += 2 {
				arg := int(ops[i+1])
				now = now.Add(time.Duration(arg) * 97 * time.Microsecond)
				switch ops[i] % 7 {
				case 0:
					size := 100 + arg*6
					c.OnPacketSent(now, inFlight, size)
					inFlight += size
				case 1:
					rtt.UpdateRTT(time.Duration(arg+1)*time.Millisecond, now)
					acked := min(arg*40, inFlight+arg)
					c.OnAck(now, acked, inFlight, &rtt, time.Duration(arg-50)*time.Millisecond)
					inFlight = max(inFlight-acked, 0)
				case 2:
					c.OnLoss(now, now.Add(-time.Duration(arg)*time.Millisecond), 1200, inFlight)
					inFlight = max(inFlight-1200, 0)
				case 3:
					c.OnRetransmissionTimeout(now)
					inFlight = 0
				case 4:
					c.SetMaxDatagramSize(arg * 8)
				case 5:
					if o, ok := c.(AppLimitedObserver); ok {
						o.OnAppLimited(inFlight)
					}
				case 6:
					now = now.Add(-time.Duration(arg) * time.Millisecond) // a clock that steps back
				}
				w := c.CongestionWindow()
				require.Positive(t, w, "%s: window after op %d", bc.name, i/2)
				require.LessOrEqual(t, w, 64<<20, "%s: window after op %d", bc.name, i/2)
				d := c.PacingDelay(now, 1200, 0)
				require.GreaterOrEqual(t, d, time.Duration(0), "%s: pacing delay after op %d", bc.name, i/2)
				require.LessOrEqual(t, d, maxPacingDelay, "%s: pacing delay after op %d", bc.name, i/2)
			}
			if b, ok := c.(*bbr); ok {
				bw := b.bw()
				require.False(t, math.IsNaN(bw) || math.IsInf(bw, 0) || bw < 0, "bbr: bandwidth estimate %v", bw)
			}
		}
	})
}
