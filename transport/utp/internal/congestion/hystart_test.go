package congestion

import (
	"testing"
	"time"
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
	if div, _ := feedRound(&h, 10, 105*time.Millisecond); div != 1 {
		t.Fatal("a 5 ms rise at 100 ms (threshold 12.5 ms) entered CSS")
	}
	if div, _ := feedRound(&h, 10, 120*time.Millisecond); div != hystartCSSGrowthDiv {
		t.Fatal("a 15 ms rise did not enter CSS")
	}
	for round := 0; round < hystartCSSRounds-1; round++ {
		if _, exit := feedRound(&h, 10, 125*time.Millisecond); exit {
			t.Fatalf("left slow start after %d CSS rounds", round+1)
		}
	}
	if _, exit := feedRound(&h, 10, 125*time.Millisecond); !exit {
		t.Fatal("still in slow start after the CSS rounds")
	}
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
		if div, _ := h.onAck(i == 0, rtt); div != 1 && i >= hystartNRTTSample-1 {
			t.Fatalf("entered CSS on a round whose minimum did not rise (ack %d)", i)
		}
	}
}

func TestHyStartBackToSlowStart(t *testing.T) {
	var h hystart
	h.reset()
	feedRound(&h, 10, 20*time.Millisecond)
	feedRound(&h, 10, 30*time.Millisecond) // CSS, baseline 30 ms
	if div, _ := feedRound(&h, 10, 25*time.Millisecond); div != 1 {
		t.Fatal("an RTT back under the CSS baseline did not resume slow start")
	}
}
