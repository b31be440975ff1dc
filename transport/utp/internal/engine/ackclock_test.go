package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/netem"
)

// A sender held back by its pacer on a 100 Mbit/s path sends what the pacer
// earned when acknowledgements arrive, and its pacing timer is only a
// fallback: 16 MiB (some 12,000 packets) arrive byte for byte, and the timer
// ended a pacing wait for fewer than one packet in 80 (one in 170-250 when
// this test was written). With a timer at every wait it did so for one packet
// in 27-38.
func TestPacerLeavesWaitsToAcks(t *testing.T) {
	up := netem.Impairment{Rate: 100e6 / 8, QueueBytes: 250 << 10, Delay: 10 * time.Millisecond}
	p := newPair(t, pairOpts{netA: &netem.Config{Out: up, Seed: 5},
		netB: &netem.Config{Out: netem.Impairment{Delay: 10 * time.Millisecond}, Seed: 6}})
	ca, cb := p.connect(t)
	data := randomBytes(16<<20, 22)
	before := p.a.Stats()
	transfer(t, ca, cb, data)
	after := p.a.Stats()
	sent, wakeups := after.PacketsSent-before.PacketsSent, after.PacerWakeups-before.PacerWakeups
	require.Greater(t, sent, int64(len(data)/1500), "packets sent")
	require.Less(t, wakeups, sent/80, "pacing waits the timer ended, for %d packets", sent)
}

// pacingWake, over what a connection has in flight and its last RTT sample.
func TestPacingWake(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, _ := p.connect(t)
	ca.mu.Lock()
	defer ca.mu.Unlock()
	due := time.Now().Add(time.Millisecond)
	mss := ca.mtu.cur
	for _, tc := range []struct {
		name     string
		inflight int
		rtt      time.Duration
		want     time.Duration // past due
	}{
		{name: "nothing in flight", inflight: 0, rtt: 20 * time.Millisecond, want: 0},
		{name: "too few in flight to be acknowledged at once", inflight: (ackClockPackets - 1) * mss, rtt: 100 * time.Microsecond, want: 0},
		{name: "acknowledged too slowly: 3 packets a millisecond", inflight: 60 * mss, rtt: 20 * time.Millisecond, want: 0},
		{name: "4 packets a millisecond", inflight: 80 * mss, rtt: 20 * time.Millisecond, want: 5 * time.Millisecond},
		{name: "a long round trip: at most the cap", inflight: 1000 * mss, rtt: 100 * time.Millisecond, want: maxAckClockWait},
	} {
		saved := ca.inflight
		ca.inflight = tc.inflight
		ca.rtt.UpdateRTT(tc.rtt, time.Now())
		got := ca.pacingWake(due).Sub(due)
		ca.inflight = saved
		require.Equal(t, tc.want, got, tc.name)
	}
}
