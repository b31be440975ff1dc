package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/netem"
)

// A sender held back by its pacer sends what the pacer earned when
// acknowledgements arrive, and its pacing timer is only a fallback: the data
// arrive byte for byte, and the timer ended a pacing wait for fewer than one
// packet in perPacket. When this test was written it ended one wait in
// 335-565 packets at 100 Mbit/s and one in 155-985 at 20 Mbit/s; with a timer
// at every wait, one in 27-32 and one in 4-5.
func TestPacerLeavesWaitsToAcks(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rate      float64 // bytes per second
		delay     time.Duration
		queue     int
		size      int
		perPacket int64
	}{
		{name: "100 Mbit/s, 20 ms", rate: 100e6 / 8, delay: 10 * time.Millisecond, queue: 250 << 10, size: 16 << 20, perPacket: 80},
		{name: "20 Mbit/s, 4 ms", rate: 20e6 / 8, delay: 2 * time.Millisecond, queue: 40 * 1500, size: 4 << 20, perPacket: 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := netem.Impairment{Rate: tc.rate, QueueBytes: tc.queue, Delay: tc.delay}
			p := newPair(t, pairOpts{netA: &netem.Config{Out: up, Seed: 5},
				netB: &netem.Config{Out: netem.Impairment{Delay: tc.delay}, Seed: 6}})
			ca, cb := p.connect(t)
			data := randomBytes(tc.size, 22)
			before := p.a.Stats()
			transfer(t, ca, cb, data)
			after := p.a.Stats()
			sent, wakeups := after.PacketsSent-before.PacketsSent, after.PacerWakeups-before.PacerWakeups
			require.Greater(t, sent, int64(len(data)/1500), "packets sent")
			t.Logf("the pacer's timer ended %d waits for %d packets", wakeups, sent)
			require.Less(t, wakeups, sent/tc.perPacket, "pacing waits the timer ended, for %d packets", sent)
		})
	}
}

// ackClockLeeway, over what a connection has in flight and its last RTT
// sample.
func TestAckClockLeeway(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, _ := p.connect(t)
	ca.mu.Lock()
	defer ca.mu.Unlock()
	mss := ca.mtu.cur
	for _, tc := range []struct {
		name     string
		inflight int
		rtt      time.Duration
		want     time.Duration
	}{
		{name: "nothing in flight", inflight: 0, rtt: 20 * time.Millisecond, want: 0},
		{name: "too few in flight to be acknowledged at once", inflight: (ackClockPackets - 1) * mss, rtt: 100 * time.Microsecond, want: 0},
		{name: "acknowledgements 1 ms apart: four of them", inflight: 10 * mss, rtt: 5 * time.Millisecond, want: 4 * time.Millisecond},
		{name: "acknowledgements often: a quarter of the round trip", inflight: 80 * mss, rtt: 20 * time.Millisecond, want: 5 * time.Millisecond},
		{name: "a long round trip: at most the cap", inflight: 1000 * mss, rtt: 100 * time.Millisecond, want: maxAckClockWait},
		{name: "acknowledgements too sparse to carry the sender", inflight: 80 * mss, rtt: 200 * time.Millisecond, want: 0},
		{name: "as sparse as can carry it", inflight: 40 * mss, rtt: 50 * time.Millisecond, want: maxAckClockWait},
	} {
		saved := ca.inflight
		ca.inflight = tc.inflight
		ca.rtt.UpdateRTT(tc.rtt, time.Now())
		got := ca.ackClockLeeway()
		ca.inflight = saved
		require.Equal(t, tc.want, got, tc.name)
	}
}
