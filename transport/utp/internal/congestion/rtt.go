package congestion

import "time"

// RTO bounds. RFC 6298 asks for at least one second; like Linux and QUIC we go
// lower, since a spurious timeout costs one round of slow start while a long
// one stalls every path shorter than a second.
const (
	DefaultInitialRTO = time.Second
	DefaultMinRTO     = 200 * time.Millisecond
	DefaultMaxRTO     = 60 * time.Second
)

// RTTStats keeps a connection's round-trip estimates: the latest sample, the
// minimum over a window, and the smoothed mean and variation of RFC 6298. The
// engine feeds it only samples Karn's rule allows (never from a packet that
// was retransmitted).
type RTTStats struct {
	latest, smoothed, rttvar time.Duration
	min                      time.Duration
	minAt                    time.Time
	// MinRTTWindow is how long a minimum stands before a larger sample may
	// replace it, so a route change to a longer path is noticed; zero means 10 s.
	MinRTTWindow time.Duration
	// MinRTO and MaxRTO clamp RTO; zero means DefaultMinRTO and DefaultMaxRTO.
	MinRTO, MaxRTO time.Duration
}

// UpdateRTT adds a sample taken at now.
func (r *RTTStats) UpdateRTT(sample time.Duration, now time.Time) {
	if sample <= 0 {
		return
	}
	r.latest = sample
	window := r.MinRTTWindow
	if window == 0 {
		window = 10 * time.Second
	}
	if r.min == 0 || sample <= r.min || now.Sub(r.minAt) > window {
		r.min, r.minAt = sample, now
	}
	if r.smoothed == 0 {
		r.smoothed, r.rttvar = sample, sample/2
		return
	}
	diff := r.smoothed - sample
	if diff < 0 {
		diff = -diff
	}
	r.rttvar = (3*r.rttvar + diff) / 4
	r.smoothed = (7*r.smoothed + sample) / 8
}

// HasSample reports whether any sample has been taken.
func (r *RTTStats) HasSample() bool { return r.smoothed != 0 }

// LatestRTT is the most recent sample.
func (r *RTTStats) LatestRTT() time.Duration { return r.latest }

// MinRTT is the smallest sample of the current window.
func (r *RTTStats) MinRTT() time.Duration { return r.min }

// SmoothedRTT is RFC 6298's SRTT.
func (r *RTTStats) SmoothedRTT() time.Duration { return r.smoothed }

// RTTVar is RFC 6298's RTTVAR.
func (r *RTTStats) RTTVar() time.Duration { return r.rttvar }

// RTO is the retransmission timeout before any backoff: SRTT + 4*RTTVAR,
// clamped to [MinRTO, MaxRTO], or DefaultInitialRTO before the first sample.
func (r *RTTStats) RTO() time.Duration {
	if !r.HasSample() {
		return DefaultInitialRTO
	}
	lo, hi := r.MinRTO, r.MaxRTO
	if lo == 0 {
		lo = DefaultMinRTO
	}
	if hi == 0 {
		hi = DefaultMaxRTO
	}
	return min(max(r.smoothed+4*r.rttvar, lo), hi)
}
