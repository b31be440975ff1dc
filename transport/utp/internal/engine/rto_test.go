package engine

import (
	"context"
	"testing"
	"time"

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
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
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
		if gap := times[i].Sub(times[i-1]); gap < want*9/10 {
			t.Errorf("retransmission %d after %v, want at least %v", i, gap, want)
		}
	}
	if _, err := c.Write([]byte("still open")); err != nil {
		t.Fatalf("connection gave up: %v", err)
	}
	// The peer acknowledges at last, without timestamps: the packet was sent
	// several times, so which send the ACK answers is unknown (Karn).
	ack := wire.Header{Type: wire.State, ConnID: 301, SeqNr: 2, AckNr: seq, WndSize: 1 << 20}
	ep.DeliverDatagram(ack.Append(nil))
	c.mu.Lock()
	sampled, una := c.rtt.HasSample(), c.sndUna
	c.mu.Unlock()
	if sampled {
		t.Error("an ACK of a retransmitted packet gave an RTT sample")
	}
	if una != seq+1 {
		t.Errorf("sndUna %d after the ACK of %d", una, seq)
	}
	if s := ep.Stats(); s.RTOs < 4 {
		t.Errorf("stats %+v", s)
	}
}
