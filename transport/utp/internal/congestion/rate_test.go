package congestion

import (
	"math"
	"testing"
	"time"
)

// A steady flow of a packet a millisecond, each acknowledged 50 ms after it
// left, gives samples of one packet a millisecond.
func TestRateSamplerSteady(t *testing.T) {
	var rs rateSampler
	const rtt = 50 * time.Millisecond
	want := 1200 / time.Millisecond.Seconds()
	var got float64
	for ms := 0; ms < 500; ms++ {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		if ms >= 50 {
			got = rs.onAck(now, 1200, rtt, rtt).rate
		}
		rs.onSent(now, min(ms, 50)*1200, rtt)
	}
	if math.Abs(got-want)/want > 0.05 {
		t.Fatalf("rate %.0f B/s, want %.0f", got, want)
	}
}

// ACKs held back 10 ms (a descheduled receiver) and then delivered at once do
// not read as a burst of bandwidth: the send interval bounds the sample.
func TestRateSamplerBunchedAcks(t *testing.T) {
	var rs rateSampler
	const rtt = 50 * time.Millisecond
	want := 1200 / time.Millisecond.Seconds()
	peak := 0.0
	for ms := 0; ms < 1000; ms++ {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		rs.onSent(now, 50*1200, rtt)
		if ms >= 60 && ms%10 == 0 {
			// Ten packets' ACKs at once, the newest sent 50 ms ago.
			for i := 9; i >= 0; i-- {
				s := rs.onAck(now, 1200, rtt+time.Duration(i)*time.Millisecond, rtt)
				peak = max(peak, s.rate)
			}
		}
	}
	if peak > 1.25*want {
		t.Fatalf("peak sample %.0f B/s from bunched ACKs, want at most 1.25 x %.0f", peak, want)
	}
	if peak < 0.8*want {
		t.Fatalf("peak sample %.0f B/s, want about %.0f", peak, want)
	}
}

// Samples over less than the minimum RTT are dropped, as are those for a
// packet sent before the oldest record.
func TestRateSamplerRejects(t *testing.T) {
	var rs rateSampler
	rs.onSent(t0, 0, 0)
	if s := rs.onAck(t0.Add(time.Millisecond), 1200, time.Millisecond, 10*time.Millisecond); s.rate != 0 {
		t.Fatalf("sample %v over 1 ms with a 10 ms minimum RTT", s.rate)
	}
	if s := rs.onAck(t0.Add(time.Hour), 1200, 2*time.Hour, 0); s.rate != 0 {
		t.Fatalf("sample %v for a packet sent before every record", s.rate)
	}
}

func TestRateSamplerAppLimited(t *testing.T) {
	var rs rateSampler
	rs.onSent(t0, 0, 0)
	rs.onAppLimited(1200)
	rs.onSent(t0.Add(time.Millisecond), 1200, 0)
	s := rs.onAck(t0.Add(51*time.Millisecond), 1200, 50*time.Millisecond, 0)
	if !s.appLimited {
		t.Fatal("a packet sent while app-limited gave a sample not marked so")
	}
	// Sent before what was in flight at the mark is all delivered: still
	// app-limited; the ACK that delivers past the mark clears it.
	rs.onSent(t0.Add(52*time.Millisecond), 0, 0)
	if s := rs.onAck(t0.Add(102*time.Millisecond), 1200, 50*time.Millisecond, 0); !s.appLimited {
		t.Fatal("a packet sent before the mark cleared gave a sample not marked app-limited")
	}
	rs.onSent(t0.Add(103*time.Millisecond), 0, 0)
	if s := rs.onAck(t0.Add(153*time.Millisecond), 1200, 50*time.Millisecond, 0); s.appLimited {
		t.Fatal("app-limited mark outlived the data in flight when it was set")
	}
}

func TestMaxFilter(t *testing.T) {
	var f maxFilter
	f.update(0, 10, 100)
	f.update(1, 10, 50)
	f.update(5, 10, 70)
	if got := f.get(); got != 100 {
		t.Fatalf("max %v, want 100", got)
	}
	f.update(11, 10, 60) // round 0's 100 has left the window
	if got := f.get(); got != 70 {
		t.Fatalf("max after expiry %v, want the next best 70", got)
	}
	f.update(12, 10, 200)
	if got := f.get(); got != 200 {
		t.Fatalf("max %v, want the new 200", got)
	}
	f.update(40, 10, 1)
	if got := f.get(); got != 1 {
		t.Fatalf("max %v after everything expired, want 1", got)
	}
}

func TestRoundCounter(t *testing.T) {
	var r roundCounter
	if !r.onDone(1200, 12000) {
		t.Fatal("the first ACK does not start a round")
	}
	for i := 0; i < 9; i++ {
		if r.onDone(1200, 12000) {
			t.Fatalf("round ended after %d of 10 packets", i+1)
		}
	}
	if !r.onDone(1200, 12000) || r.count != 2 {
		t.Fatalf("round did not end after the 10 packets in flight at its start (count %d)", r.count)
	}
}
