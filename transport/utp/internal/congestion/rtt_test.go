package congestion

import (
	"testing"
	"time"
)

func TestRTTStatsRFC6298(t *testing.T) {
	var r RTTStats
	if r.HasSample() || r.RTO() != DefaultInitialRTO {
		t.Fatalf("before any sample: HasSample %v, RTO %v", r.HasSample(), r.RTO())
	}
	r.UpdateRTT(100*time.Millisecond, t0)
	if r.SmoothedRTT() != 100*time.Millisecond || r.RTTVar() != 50*time.Millisecond {
		t.Fatalf("first sample: SRTT %v RTTVAR %v, want 100 ms and 50 ms", r.SmoothedRTT(), r.RTTVar())
	}
	if r.RTO() != 300*time.Millisecond {
		t.Fatalf("RTO %v, want SRTT + 4 RTTVAR = 300 ms", r.RTO())
	}
	r.UpdateRTT(200*time.Millisecond, t0.Add(time.Second))
	// RTTVAR from the old SRTT: 3/4*50 + 1/4*|100-200| = 62.5; SRTT 7/8*100 + 1/8*200 = 112.5.
	if r.RTTVar() != 62500*time.Microsecond || r.SmoothedRTT() != 112500*time.Microsecond {
		t.Fatalf("second sample: SRTT %v RTTVAR %v, want 112.5 ms and 62.5 ms", r.SmoothedRTT(), r.RTTVar())
	}
	if r.LatestRTT() != 200*time.Millisecond || r.MinRTT() != 100*time.Millisecond {
		t.Fatalf("latest %v min %v", r.LatestRTT(), r.MinRTT())
	}
	r.UpdateRTT(0, t0.Add(2*time.Second))
	if r.LatestRTT() != 200*time.Millisecond {
		t.Fatal("a zero sample was taken")
	}
}

func TestRTTStatsBounds(t *testing.T) {
	r := RTTStats{MinRTO: 50 * time.Millisecond, MaxRTO: 2 * time.Second}
	for i := 0; i < 50; i++ {
		r.UpdateRTT(time.Millisecond, t0)
	}
	if r.RTO() != 50*time.Millisecond {
		t.Fatalf("RTO %v on a 1 ms path, want the 50 ms floor", r.RTO())
	}
	r.UpdateRTT(10*time.Second, t0)
	if r.RTO() != 2*time.Second {
		t.Fatalf("RTO %v after a 10 s sample, want the 2 s cap", r.RTO())
	}
}

func TestRTTStatsMinWindow(t *testing.T) {
	r := RTTStats{MinRTTWindow: time.Second}
	r.UpdateRTT(10*time.Millisecond, t0)
	r.UpdateRTT(30*time.Millisecond, t0.Add(500*time.Millisecond))
	if r.MinRTT() != 10*time.Millisecond {
		t.Fatalf("min %v inside the window, want 10 ms", r.MinRTT())
	}
	r.UpdateRTT(30*time.Millisecond, t0.Add(1500*time.Millisecond))
	if r.MinRTT() != 30*time.Millisecond {
		t.Fatalf("min %v after the window, want the path's new 30 ms", r.MinRTT())
	}
}
