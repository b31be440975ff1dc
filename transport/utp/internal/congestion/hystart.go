package congestion

import "time"

// HyStart++ constants (RFC 9406 section 4.3). There is no limit on slow
// start's growth per ACK (L) because our sends are paced.
const (
	hystartMinRTTThresh  = 4 * time.Millisecond
	hystartMaxRTTThresh  = 16 * time.Millisecond
	hystartMinRTTDivisor = 8
	hystartNRTTSample    = 8
	hystartCSSGrowthDiv  = 4
	hystartCSSRounds     = 5
	hystartNoRTT         = time.Duration(1<<63 - 1)
)

// hystart decides when slow start ends (RFC 9406): when a round's minimum RTT
// has grown by a threshold over the last round's, a queue is building, and the
// window grows at a quarter of slow start's pace (Conservative Slow Start)
// for a few rounds, back to slow start if the RTT falls again, else on to
// congestion avoidance. The minimum over at least eight samples a round is
// what it compares, so a few samples delayed by a busy CPU do not end slow
// start.
type hystart struct {
	lastRoundMin, roundMin time.Duration
	samples                int
	css                    bool
	cssBaseline            time.Duration
	cssRounds              int
}

func (h *hystart) reset() {
	*h = hystart{lastRoundMin: hystartNoRTT, roundMin: hystartNoRTT}
}

// onAck takes an ACK in slow start with its RTT sample; roundEnded says it
// began a new round. It returns the divisor of slow start's growth and whether
// slow start is over.
func (h *hystart) onAck(roundEnded bool, sample time.Duration) (divisor int, exit bool) {
	if roundEnded {
		if h.css {
			h.cssRounds++
			if h.cssRounds >= hystartCSSRounds {
				h.reset()
				return hystartCSSGrowthDiv, true
			}
		}
		h.lastRoundMin, h.roundMin, h.samples = h.roundMin, hystartNoRTT, 0
	}
	if sample > 0 {
		h.roundMin = min(h.roundMin, sample)
		h.samples++
	}
	if h.samples >= hystartNRTTSample && h.roundMin != hystartNoRTT {
		switch {
		case !h.css && h.lastRoundMin != hystartNoRTT:
			thresh := min(max(h.lastRoundMin/hystartMinRTTDivisor, hystartMinRTTThresh), hystartMaxRTTThresh)
			if h.roundMin >= h.lastRoundMin+thresh {
				h.css, h.cssBaseline, h.cssRounds = true, h.roundMin, 0
			}
		case h.css && h.roundMin < h.cssBaseline:
			// The RTT fell back: the rise was a spike, not a queue.
			h.css = false
		}
	}
	if h.css {
		return hystartCSSGrowthDiv, false
	}
	return 1, false
}
