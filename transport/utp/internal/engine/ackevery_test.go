package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/netem"
)

// Over a path that delivers packets one at a time and in order, the receiver
// acknowledges every AckEvery-th packet. Asserted: the bytes, and the count
// of datagrams the receiver sent against those it received, for the default
// and for AckEvery 4.
func TestAckEvery(t *testing.T) {
	for _, tc := range []struct {
		ackEvery int
		min, max float64 // received data packets per acknowledgement
	}{
		{0, 1.5, 2.2}, // the default, 2
		{4, 3, 4.5},   // a delayed ACK covers fewer
	} {
		const rate = 8e6 // a packet every 175 µs: AckEvery of them well within AckDelay
		up := netem.Impairment{Rate: rate, QueueBytes: 256 << 10, Delay: 5 * time.Millisecond}
		p := newPair(t, pairOpts{netA: &netem.Config{Out: up, Seed: 7},
			netB: &netem.Config{Out: netem.Impairment{Delay: 5 * time.Millisecond}, Seed: 8},
			cfgB: Config{AckEvery: tc.ackEvery}})
		ca, cb := p.connect(t)
		transfer(t, ca, cb, randomBytes(4<<20, 22))
		st := p.b.Stats()
		perAck := float64(st.PacketsReceived) / float64(st.PacketsSent)
		require.GreaterOrEqual(t, perAck, tc.min, "AckEvery %d: %d packets received, %d sent", tc.ackEvery, st.PacketsReceived, st.PacketsSent)
		require.LessOrEqual(t, perAck, tc.max, "AckEvery %d: %d packets received, %d sent", tc.ackEvery, st.PacketsReceived, st.PacketsSent)
	}
}
