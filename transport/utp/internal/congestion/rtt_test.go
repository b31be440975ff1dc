package congestion

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRTTStatsRFC6298(t *testing.T) {
	var r RTTStats
	require.False(t, r.HasSample(), "before any sample")
	require.Equal(t, DefaultInitialRTO, r.RTO(), "RTO before any sample")
	r.UpdateRTT(100*time.Millisecond, t0)
	require.Equal(t, 100*time.Millisecond, r.SmoothedRTT(), "SRTT after the first sample")
	require.Equal(t, 50*time.Millisecond, r.RTTVar(), "RTTVAR after the first sample")
	require.Equal(t, 300*time.Millisecond, r.RTO(), "RTO, want SRTT + 4 RTTVAR")
	r.UpdateRTT(200*time.Millisecond, t0.Add(time.Second))
	// RTTVAR from the old SRTT: 3/4*50 + 1/4*|100-200| = 62.5; SRTT 7/8*100 + 1/8*200 = 112.5.
	require.Equal(t, 62500*time.Microsecond, r.RTTVar(), "RTTVAR after the second sample")
	require.Equal(t, 112500*time.Microsecond, r.SmoothedRTT(), "SRTT after the second sample")
	require.Equal(t, 200*time.Millisecond, r.LatestRTT(), "latest")
	require.Equal(t, 100*time.Millisecond, r.MinRTT(), "min")
	r.UpdateRTT(0, t0.Add(2*time.Second))
	require.Equal(t, 200*time.Millisecond, r.LatestRTT(), "a zero sample was taken")
}

func TestRTTStatsBounds(t *testing.T) {
	r := RTTStats{MinRTO: 50 * time.Millisecond, MaxRTO: 2 * time.Second}
	for i := 0; i < 50; i++ {
		r.UpdateRTT(time.Millisecond, t0)
	}
	require.Equal(t, 50*time.Millisecond, r.RTO(), "RTO on a 1 ms path, want the floor")
	r.UpdateRTT(10*time.Second, t0)
	require.Equal(t, 2*time.Second, r.RTO(), "RTO after a 10 s sample, want the cap")
}

func TestRTTStatsMinWindow(t *testing.T) {
	r := RTTStats{MinRTTWindow: time.Second}
	r.UpdateRTT(10*time.Millisecond, t0)
	r.UpdateRTT(30*time.Millisecond, t0.Add(500*time.Millisecond))
	require.Equal(t, 10*time.Millisecond, r.MinRTT(), "min inside the window")
	r.UpdateRTT(30*time.Millisecond, t0.Add(1500*time.Millisecond))
	require.Equal(t, 30*time.Millisecond, r.MinRTT(), "min after the window, want the path's new one")
}
