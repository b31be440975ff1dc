package engine

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/netem"
)

// A Write larger than the send buffer over a slow path is woken once a
// quarter of the buffer has drained, not for every acknowledgement: 4 MiB
// through a 256 KiB buffer takes some 64 wake-ups (more when the writer is
// slow to refill, as under the race detector), where one per ACK (every
// second packet) took over a thousand. Asserted: the bytes, and that the
// wake-ups while the Write ran were fewer than a third of the ACKs.
func TestWriterWokenPerQuarterBuffer(t *testing.T) {
	const rate = 4e6 // bytes per second; the buffer, not the window, holds the writer back
	up := netem.Impairment{Rate: rate, QueueBytes: 64 << 10, Delay: 5 * time.Millisecond}
	p := newPair(t, pairOpts{netA: &netem.Config{Out: up, Seed: 3},
		netB: &netem.Config{Out: netem.Impairment{Delay: 5 * time.Millisecond}, Seed: 4}})
	ca, cb := p.connect(t)
	data := randomBytes(4<<20, 21)
	type result struct {
		wakeups int64
		err     error
	}
	done := make(chan result, 1)
	go func() {
		_, err := ca.Write(data)
		r := result{p.a.Stats().WriterWakeups, err} // before the queue's tail drains
		if err == nil {
			err = ca.CloseWrite()
		}
		r.err = err
		done <- r
	}()
	_ = cb.SetReadDeadline(time.Now().Add(2 * time.Minute))
	got, err := io.ReadAll(cb)
	require.NoError(t, err, "read after %d bytes", len(got))
	r := <-done
	require.NoError(t, r.err, "write")
	require.True(t, bytes.Equal(got, data), "got %d bytes, want %d, byte for byte", len(got), len(data))
	acks := int64(len(data)) / (2 * 1472) // the fewest: one for every two of the largest packets
	require.LessOrEqual(t, r.wakeups, acks/3, "writer wake-ups for %d bytes", len(data))
	require.Positive(t, r.wakeups, "writer wake-ups")
}

// writerShouldWake, over the states an acknowledgement can leave behind.
func TestWriterShouldWake(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, _ := p.connect(t)
	ca.mu.Lock()
	defer ca.mu.Unlock()
	buf := ca.ep.cfg.MinSendBuffer // the limit while the window is smaller
	require.Less(t, ca.cc.CongestionWindow(), buf, "an idle connection's window")
	saved := ca.ep.cfg
	defer func() { ca.ep.cfg = saved }()
	for _, tc := range []struct {
		name           string
		maxWindow      int
		unsent, queued int
		state          connState
		want           bool
	}{
		{name: "a quarter free", maxWindow: saved.MaxWindow, unsent: buf * 3 / 4, queued: buf, want: true},
		{name: "less than a quarter free", maxWindow: saved.MaxWindow, unsent: buf*3/4 + 1, queued: buf, want: false},
		{name: "full", maxWindow: saved.MaxWindow, unsent: buf, queued: buf, want: false},
		// MaxWindow binds: little room, and nearly nothing left unsent to
		// keep the connection busy until the next wake-up.
		{name: "window-bound, little unsent", maxWindow: 128 << 10, unsent: 1000, queued: 127 << 10, want: true},
		{name: "window-bound, much unsent", maxWindow: 128 << 10, unsent: 64 << 10, queued: 127 << 10, want: false},
		{name: "window-bound, no room", maxWindow: 128 << 10, unsent: 0, queued: 128 << 10, want: false},
		{name: "closed", maxWindow: saved.MaxWindow, unsent: buf, queued: buf, state: stateDead, want: true},
	} {
		unsent, queued, state := ca.unsent, ca.queued, ca.state
		ca.ep.cfg.MaxWindow = tc.maxWindow
		ca.unsent, ca.queued = tc.unsent, tc.queued
		if tc.state != 0 {
			ca.state = tc.state
		}
		got := ca.writerShouldWake()
		ca.unsent, ca.queued, ca.state = unsent, queued, state
		require.Equal(t, tc.want, got, tc.name)
	}
}
