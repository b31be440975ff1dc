package congestion

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A sender that keeps waking 8 ms late (a busy CPU) is granted 8 ms of
// credit, not the usual 2 ms, so it keeps its rate; an on-time sender's burst
// stays at the usual size.
func TestPacerCoversLateness(t *testing.T) {
	const rate = 10e6 // bytes per second: a 1200-byte packet every 120 µs
	for _, late := range []time.Duration{0, 8 * time.Millisecond} {
		var p pacer
		now := t0
		sent := 0
		for now.Sub(t0) < time.Second {
			for p.delay(now, rate, 1200, 0) == 0 {
				p.sent(now, rate, 1200, 1200)
				sent += 1200
			}
			now = now.Add(p.delay(now, rate, 1200, 0) + late)
		}
		got := float64(sent) / rate
		if !assert.GreaterOrEqual(t, got, 0.95, "%v late: sent %.0f%% of the rate", late, 100*got) {
			continue
		}
		if late == 0 {
			assert.Equal(t, rate*pacingGranularity.Seconds(), p.burst(rate, 1200), "on time: burst in bytes, want 2 ms of rate")
		}
	}
}

// A sender that says it may come leeway past a wait gets a burst that covers
// the leeway for that wait, and the usual burst once it sends on time again.
func TestPacerBurstCoversLeeway(t *testing.T) {
	const rate = 2.5e6 // bytes per second: 20 Mbit/s
	var p pacer
	now := t0
	for p.delay(now, rate, 1200, 5*time.Millisecond) == 0 {
		p.sent(now, rate, 1200, 1200)
	}
	assert.InDelta(t, rate*(5*time.Millisecond+minPacingDelay).Seconds(), p.burst(rate, 1200), 1, "burst while waiting with a leeway")
	now = now.Add(p.delay(now, rate, 1200, 5*time.Millisecond)) // on time after all
	require.Zero(t, p.delay(now, rate, 1200, 5*time.Millisecond), "delay when due")
	assert.InDelta(t, rate*pacingGranularity.Seconds(), p.burst(rate, 1200), 1, "burst once on time")
}

func TestPacerUnpacedAndCapped(t *testing.T) {
	var p pacer
	require.Zero(t, p.delay(t0, 0, 1200, 0), "unpaced delay")
	for range 5 { // a full bucket and one more packet, at one byte a second
		p.sent(t0, 1, 1200, 1200)
	}
	require.Equal(t, maxPacingDelay, p.delay(t0, 1, 1200, 0), "delay at one byte a second, want the cap")
}

// A sender whose packets are due every 120 µs wakes once a millisecond, not
// once a packet, and then sends what the millisecond earned.
func TestPacerWakesAtMostEveryMillisecond(t *testing.T) {
	const rate = 10e6 // bytes per second: a 1200-byte packet every 120 µs
	var p pacer
	now := t0
	sent, wakes := 0, 0
	for now.Sub(t0) < time.Second {
		for p.delay(now, rate, 1200, 0) == 0 {
			p.sent(now, rate, 1200, 1200)
			sent += 1200
		}
		d := p.delay(now, rate, 1200, 0)
		require.GreaterOrEqual(t, d, minPacingDelay, "a wait shorter than the least")
		now = now.Add(d)
		wakes++
	}
	assert.LessOrEqual(t, wakes, 1000, "wake-ups in a second")
	assert.GreaterOrEqual(t, float64(sent)/rate, 0.95, "share of the rate sent")
}
