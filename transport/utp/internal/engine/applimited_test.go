package engine

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/netem"
	"github.com/stretchr/testify/require"
)

// TestAppLimitedKeepsBandwidth fills a 20 Mbit/s path of 40 ms with a bulk
// transfer, then exchanges a 100-byte message each way per round trip for
// forty round trips, as a request/response protocol or an interactive stream
// does. Those rounds deliver a packet each: they measure the application, not
// the path, and the engine must say so (the send queue ran dry with window to
// spare), or BBR lets its ten-round maximum of the path's rate expire and
// takes the application's as the path's. Its window, which BBR sets from that
// rate, would fall from twice the path's bandwidth-delay product to a few
// packets, and the next burst would start from there.
func TestAppLimitedKeepsBandwidth(t *testing.T) {
	const rate = 20e6 / 8
	const oneWay = 20 * time.Millisecond
	up := netem.Impairment{Rate: rate, QueueBytes: rate * 2 * int(oneWay/time.Millisecond) / 1000, Delay: oneWay}
	p := newPair(t, pairOpts{netA: &netem.Config{Out: up, Seed: 3},
		netB: &netem.Config{Out: netem.Impairment{Delay: oneWay}, Seed: 4}})
	ca, cb := p.connect(t)
	_ = ca.SetDeadline(time.Now().Add(time.Minute))
	_ = cb.SetDeadline(time.Now().Add(time.Minute))

	bulk := randomBytes(2<<20, 21)
	errc := make(chan error, 1)
	go func() {
		_, err := ca.Write(bulk)
		errc <- err
	}()
	got := make([]byte, len(bulk))
	_, err := io.ReadFull(cb, got)
	require.NoError(t, err, "bulk read")
	require.NoError(t, <-errc, "bulk write")
	require.True(t, bytes.Equal(got, bulk), "bulk bytes differ")
	waitFor(t, "the bulk transfer's last ACK", func() bool { return ca.Stats().BytesInFlight == 0 }, 10*time.Second)
	bulkWindow := ca.Stats().CongestionWindow

	msg := make([]byte, 100)
	for i := range 40 {
		msg[0] = byte(i)
		_, err := ca.Write(msg)
		require.NoError(t, err, "request %d", i)
		_, err = io.ReadFull(cb, got[:len(msg)])
		require.NoError(t, err, "request %d read", i)
		require.Equal(t, msg, got[:len(msg)], "request %d", i)
		_, err = cb.Write(msg)
		require.NoError(t, err, "response %d", i)
		_, err = io.ReadFull(ca, got[:len(msg)])
		require.NoError(t, err, "response %d read", i)
	}
	waitFor(t, "the last request's ACK", func() bool { return ca.Stats().BytesInFlight == 0 }, 10*time.Second)
	st := ca.Stats()
	t.Logf("window %d bytes after the bulk transfer, %d after 40 app-limited rounds (min RTT %v)",
		bulkWindow, st.CongestionWindow, st.MinRTT)
	require.GreaterOrEqual(t, st.CongestionWindow, bulkWindow/2,
		"window after app-limited rounds, want about the bulk transfer's (%d)", bulkWindow)
}
