package congestion

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// feedRound gives hystart one round of n ACKs with RTT rtt and returns the last
// result.
func feedRound(h *hystart, n int, rtt time.Duration) (div int, exit bool) {
	for i := 0; i < n; i++ {
		div, exit = h.onAck(i == 0, rtt)
		if exit {
			return
		}
	}
	return
}

func TestHyStartConservativeThenExit(t *testing.T) {
	var h hystart
	h.reset()
	feedRound(&h, 10, 100*time.Millisecond)
	div, _ := feedRound(&h, 10, 105*time.Millisecond)
	require.Equal(t, 1, div, "a 5 ms rise at 100 ms (threshold 12.5 ms) entered CSS")
	div, _ = feedRound(&h, 10, 120*time.Millisecond)
	require.Equal(t, hystartCSSGrowthDiv, div, "a 15 ms rise did not enter CSS")
	for round := 0; round < hystartCSSRounds-1; round++ {
		_, exit := feedRound(&h, 10, 125*time.Millisecond)
		require.False(t, exit, "left slow start after %d CSS rounds", round+1)
	}
	_, exit := feedRound(&h, 10, 125*time.Millisecond)
	require.True(t, exit, "still in slow start after the CSS rounds")
}

func TestHyStartIgnoresSpikes(t *testing.T) {
	var h hystart
	h.reset()
	feedRound(&h, 10, 20*time.Millisecond)
	// Most of a round delayed by a busy CPU, but not all: the minimum holds.
	for i := 0; i < 10; i++ {
		rtt := 40 * time.Millisecond
		if i == 7 {
			rtt = 20 * time.Millisecond
		}
		div, _ := h.onAck(i == 0, rtt)
		if i >= hystartNRTTSample-1 {
			require.Equal(t, 1, div, "entered CSS on a round whose minimum did not rise (ack %d)", i)
		}
	}
}

func TestHyStartBackToSlowStart(t *testing.T) {
	var h hystart
	h.reset()
	feedRound(&h, 10, 20*time.Millisecond)
	feedRound(&h, 10, 30*time.Millisecond) // CSS, baseline 30 ms
	div, _ := feedRound(&h, 10, 25*time.Millisecond)
	require.Equal(t, 1, div, "an RTT back under the CSS baseline did not resume slow start")
}
