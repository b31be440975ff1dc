package congestion

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// paceOneSecond sends 1200-byte packets through p for one second, waking late
// after every wait, and returns what it sent as a share of rate.
func paceOneSecond(p *pacer, rate float64, late time.Duration) float64 {
	now := t0
	sent := 0
	for now.Sub(t0) < time.Second {
		for p.delay(now, rate, 1200) == 0 {
			p.sent(now, rate, 1200, 1200)
			sent += 1200
		}
		now = now.Add(p.delay(now, rate, 1200) + late)
	}
	return float64(sent) / rate
}

// A sender that keeps waking 8 ms late (a busy CPU) is granted 8 ms of
// credit, not the usual 2 ms, so it keeps its rate; an on-time sender's burst
// stays at the usual size.
func TestPacerCoversLateness(t *testing.T) {
	const rate = 10e6 // bytes per second: a 1200-byte packet every 120 µs
	for _, late := range []time.Duration{0, 8 * time.Millisecond} {
		var p pacer
		got := paceOneSecond(&p, rate, late)
		if !assert.GreaterOrEqual(t, got, 0.95, "%v late: sent %.0f%% of the rate", late, 100*got) {
			continue
		}
		if late == 0 {
			assert.Equal(t, rate*pacingGranularity.Seconds(), p.burst(rate, 1200), "on time: burst in bytes, want 2 ms of rate")
		}
	}
}

func TestPacerUnpacedAndCapped(t *testing.T) {
	var p pacer
	require.Zero(t, p.delay(t0, 0, 1200), "unpaced delay")
	for range 5 { // a full bucket and one more packet, at one byte a second
		p.sent(t0, 1, 1200, 1200)
	}
	require.Equal(t, maxPacingDelay, p.delay(t0, 1, 1200), "delay at one byte a second, want the cap")
}

// Once the bucket is empty, a packet waits until the rate has earned three
// packets: the wake-up then sends them together.
func TestPacerWaitsForSeveralPackets(t *testing.T) {
	for _, tc := range []struct {
		rate float64 // bytes per second
		want time.Duration
	}{
		{100e3, 36 * time.Millisecond},      // 1200 bytes every 12 ms
		{20e6 / 8, 1440 * time.Microsecond}, // every 480 µs
		{100e6 / 8, 288 * time.Microsecond}, // every 96 µs
	} {
		var p pacer
		for p.delay(t0, tc.rate, 1200) == 0 {
			p.sent(t0, tc.rate, 1200, 1200)
		}
		assert.InDelta(t, tc.want, p.delay(t0, tc.rate, 1200), float64(time.Microsecond), "wait at %.0f B/s", tc.rate)
	}
}

// A sender woken late after each wait, three packets long, still sends at its
// rate: the bucket holds what the wait and the lateness earned.
func TestPacerKeepsRateWhenLateAtLowRate(t *testing.T) {
	const rate = 20e6 / 8
	for _, late := range []time.Duration{0, 500 * time.Microsecond, 2 * time.Millisecond, 6 * time.Millisecond} {
		var p pacer
		got := paceOneSecond(&p, rate, late)
		assert.GreaterOrEqual(t, got, 0.95, "%v late: sent %.0f%% of the rate", late, 100*got)
	}
}

// A sender clocked by acknowledgements, one for every second packet at the
// path's rate, pacing at that rate (BBR cruising), sends at the path's rate
// from the acknowledgements alone: the wait the pacer asks for never ends
// before the next acknowledgement arrives, so no pacing timer would fire.
// With a wait of just the missing credit it fired between almost every two
// acknowledgements.
func TestPacerWaitOutlastsAckInterval(t *testing.T) {
	for _, bw := range []float64{1e6 / 8, 20e6 / 8, 100e6 / 8, 1e9 / 8} {
		pacing := bw
		ackEvery := time.Duration(2 * 1200 / bw * float64(time.Second))
		var p pacer
		now := t0
		sent, inflight, fires := 0, 0, 0
		const window = 40 * 1200 // what the path holds; the window limits too
		for now.Sub(t0) < time.Second {
			inflight = max(inflight-2*1200, 0) // an ACK for two packets
			wait := time.Duration(0)
			for inflight < window {
				if wait = p.delay(now, pacing, 1200); wait > 0 {
					break
				}
				p.sent(now, pacing, 1200, 1200)
				sent += 1200
				inflight += 1200
			}
			if wait > 0 && wait < ackEvery {
				fires++
			}
			now = now.Add(ackEvery)
		}
		got := float64(sent) / bw
		assert.GreaterOrEqual(t, got, 0.95, "%.0f B/s: sent %.0f%% of the path's rate", bw, 100*got)
		assert.Zero(t, fires, "%.0f B/s: waits shorter than the ACK interval %v", bw, ackEvery)
	}
}
