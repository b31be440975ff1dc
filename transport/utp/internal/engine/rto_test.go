package engine

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/transport/utp/internal/wire"
)

// TestRTOBackoffAndKarn leaves a data packet unanswered: it is resent after
// timeouts that double each time, the connection never gives up, and the
// acknowledgement of the resent packet gives no RTT sample.
func TestRTOBackoffAndKarn(t *testing.T) {
	const initial = 40 * time.Millisecond
	link := &recordLink{keep: true}
	ep := NewEndpoint(link, Config{InitialRTO: initial, MinRTO: 10 * time.Millisecond, MTUProbeInterval: -1})
	defer ep.Close()
	syn := wire.Header{Type: wire.Syn, ConnID: 300, SeqNr: 1, WndSize: 1 << 20}
	ep.DeliverDatagram(syn.Append(nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := ep.Accept(ctx)
	require.NoError(t, err)
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	waitFor(t, "five transmissions", func() bool { return len(link.packets(wire.Data)) >= 5 }, 10*time.Second)

	link.mu.Lock()
	var times []time.Time
	var seq uint16
	for i, h := range link.sent {
		if h.Type == wire.Data {
			times, seq = append(times, link.at[i]), h.SeqNr
		}
	}
	link.mu.Unlock()
	for i := 1; i < 5; i++ {
		// Timers fire late, never early: each gap is at least its due
		// timeout, which doubles.
		want := initial << (i - 1)
		gap := times[i].Sub(times[i-1])
		assert.GreaterOrEqual(t, gap, want*9/10, "retransmission %d after %v, want at least %v", i, gap, want)
	}
	_, err = c.Write([]byte("still open"))
	require.NoError(t, err, "connection gave up")
	// The peer acknowledges at last, without timestamps: the packet was sent
	// several times, so which send the ACK answers is unknown (Karn).
	ack := wire.Header{Type: wire.State, ConnID: 301, SeqNr: 2, AckNr: seq, WndSize: 1 << 20}
	ep.DeliverDatagram(ack.Append(nil))
	c.mu.Lock()
	sampled, una := c.rtt.HasSample(), c.sndUna
	c.mu.Unlock()
	assert.False(t, sampled, "an ACK of a retransmitted packet gave an RTT sample")
	assert.Equal(t, seq+1, una, "sndUna after the ACK of %d", seq)
	s := ep.Stats()
	assert.GreaterOrEqual(t, s.RTOs, int64(4), "stats %+v", s)
}
