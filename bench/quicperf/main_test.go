package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freeUDPPort returns a loopback UDP port nobody holds right now.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer c.Close()
	return c.LocalAddr().String()
}

// TestLoopback punches and moves bytes between a sender and a receiver on loopback and checks the receiver's
// file and both reports.
func TestLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sendAddr, recvAddr := freeUDPPort(t), freeUDPPort(t)
	const size = 3<<20 + 17
	out := filepath.Join(t.TempDir(), "got")
	var sendReport, recvReport bytes.Buffer
	sent := make(chan error, 1)
	go func() {
		sent <- run(ctx, options{role: "send", peer: recvAddr, bind: sendAddr, bytes: size}, json.NewEncoder(&sendReport))
	}()
	require.NoError(t, run(ctx, options{role: "recv", peer: sendAddr, bind: recvAddr, out: out}, json.NewEncoder(&recvReport)), "recv")
	require.NoError(t, <-sent, "send")
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	want, _ := io.ReadAll(io.LimitReader(rand.NewChaCha8([32]byte{'q', 'u', 'i', 'c'}), size))
	// bytes.Equal rather than require.Equal: a diff of megabytes would bury the lengths.
	require.True(t, bytes.Equal(got, want), "received %d bytes, not the %d sent", len(got), len(want))
	for _, r := range []struct {
		name string
		buf  *bytes.Buffer
	}{{"send", &sendReport}, {"recv", &recvReport}} {
		var res result
		require.NoError(t, json.Unmarshal(r.buf.Bytes(), &res), "%s report %q", r.name, r.buf)
		assert.Equal(t, "done", res.Event, "%s report: %+v", r.name, res)
		assert.Equal(t, r.name, res.Role, "%s report: %+v", r.name, res)
		assert.Equal(t, int64(size), res.Bytes, "%s report: %+v", r.name, res)
		assert.Positive(t, res.CPUSeconds, "%s report: %+v", r.name, res)
		assert.Positive(t, res.Seconds, "%s report: %+v", r.name, res)
	}
}

// TestRoundTrips runs the -rr mode on loopback: the receiver times every round trip, the sender echoes them all
// (and the untimed first one).
func TestRoundTrips(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sendAddr, recvAddr := freeUDPPort(t), freeUDPPort(t)
	var sendReport, recvReport bytes.Buffer
	sent := make(chan error, 1)
	go func() {
		sent <- run(ctx, options{role: "send", peer: recvAddr, bind: sendAddr, rr: 25, size: 100}, json.NewEncoder(&sendReport))
	}()
	require.NoError(t, run(ctx, options{role: "recv", peer: sendAddr, bind: recvAddr, rr: 25, size: 100}, json.NewEncoder(&recvReport)), "recv")
	require.NoError(t, <-sent, "send")
	var got rrResult
	require.NoError(t, json.Unmarshal(recvReport.Bytes(), &got), "recv report %q", recvReport.String())
	assert.Equal(t, "done", got.Event)
	assert.Equal(t, 25, got.N)
	assert.Positive(t, got.MinUS)
	assert.LessOrEqual(t, got.MinUS, got.MedianUS)
	var echoed struct {
		Event  string
		Echoed int
	}
	require.NoError(t, json.Unmarshal(sendReport.Bytes(), &echoed), "send report %q", sendReport.String())
	assert.Equal(t, "done", echoed.Event)
	assert.Equal(t, 26, echoed.Echoed)
}

func TestOptionErrors(t *testing.T) {
	ctx := context.Background()
	for _, o := range []options{
		{role: "both", peer: "127.0.0.1:1", bind: "127.0.0.1:0"},
		{role: "send", bind: "127.0.0.1:0"},
		{role: "recv", peer: "not an address", bind: "127.0.0.1:0"},
		{role: "recv", peer: "127.0.0.1:1", bind: "127.0.0.1:0", rr: 10, size: 0},
		{role: "recv", peer: "127.0.0.1:1", bind: "127.0.0.1:0", rr: -1},
	} {
		assert.Error(t, run(ctx, o, json.NewEncoder(io.Discard)), "%+v", o)
	}
}
