package engine

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/netem"
	"github.com/stretchr/testify/require"
)

// TestLargeBDPRecovery sends 16 MiB with the default controller over a 100
// Mbit/s path at 100 ms RTT whose drop-tail queue holds one bandwidth-delay
// product. Startup overfills that queue on its way out and loses hundreds of
// packets with over 2,200 in flight: more than the selective ACK reaches past
// the first gap, so the engine counts as in flight packets that arrived until
// the gap closes. A controller that then cuts its window below what is in flight
// holds back the retransmissions that close the gaps, and the transfer
// crawls from one tail loss probe to the next (many dozens) and ends in
// timeouts. Asserted: the bytes, and that recovery needed few probes and
// timeouts, which count events, not time.
func TestLargeBDPRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MiB over a 100 ms path")
	}
	const rate = 100e6 / 8
	up := netem.Impairment{Rate: rate, QueueBytes: rate / 10, Delay: 50 * time.Millisecond}
	p := newPair(t, pairOpts{netA: &netem.Config{Out: up, Seed: 5},
		netB: &netem.Config{Out: netem.Impairment{Delay: 50 * time.Millisecond}, Seed: 6}})
	ca, cb := p.connect(t)
	data := randomBytes(16<<20, 14)
	errc := make(chan error, 1)
	go func() {
		_, err := ca.Write(data)
		if err == nil {
			err = ca.CloseWrite()
		}
		errc <- err
	}()
	// Generous: the link moves 16 MiB in under 2 s; the collapse took from
	// 5 s to over a minute.
	_ = cb.SetReadDeadline(time.Now().Add(3 * time.Minute))
	got, err := io.ReadAll(cb)
	require.NoError(t, err, "read after %d bytes", len(got))
	require.NoError(t, <-errc, "write")
	require.True(t, bytes.Equal(got, data), "got %d bytes, want %d, byte for byte", len(got), len(data))
	st := p.a.Stats()
	t.Logf("sender: %d lost, %d retransmitted, %d tail loss probes, %d timeouts, %d spurious",
		st.Lost, st.Retransmits, st.TailLossProbes, st.RTOs, st.SpuriousRetransmits)
	require.LessOrEqual(t, st.TailLossProbes+st.RTOs, int64(8), "tail loss probes and timeouts")
}
