package natprobe_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/rendezvous/natprobe"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

// startSTUN runs the signalling server's STUN responder on loopback: on two ports when pair, else on one. It
// returns the first port's address and the second's (nil without).
func startSTUN(t *testing.T, pair bool) (*net.UDPAddr, *net.UDPAddr) {
	t.Helper()
	srv := signalserver.New(signalserver.Config{STUNRatePerIP: -1})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	var alt net.PacketConn
	if pair {
		alt, err = net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeSTUNPair(ctx, pc, alt) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		pc.Close()
		if alt != nil {
			alt.Close()
		}
		srv.Close()
	})
	if alt == nil {
		return pc.LocalAddr().(*net.UDPAddr), nil
	}
	return pc.LocalAddr().(*net.UDPAddr), alt.LocalAddr().(*net.UDPAddr)
}

// On loopback there is no NAT: the server sees our own socket, and an answer from its other port gets in.
func TestProbeLoopback(t *testing.T) {
	server, alt := startSTUN(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := natprobe.Probe(ctx, natprobe.Config{Server: server.String(), LocalAddr: "127.0.0.1:0", Retransmit: 50 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, server.AddrPort(), res.Server)
	assert.Equal(t, res.Local, res.Mapped, "no NAT rewrote our address")
	assert.Equal(t, alt.AddrPort(), res.Other, "OTHER-ADDRESS names the second port")
	assert.Equal(t, natprobe.MappingNone, res.Mapping)
	assert.Equal(t, natprobe.FilteringAddressOnly, res.Filtering, "the answer from the port we never sent to came in")
	assert.Nil(t, res.Hairpin, "no NAT: nothing to hairpin")
	assert.Positive(t, res.RTT)
	assert.Empty(t, res.Notes)
}

// A plain STUN server (one port, no OTHER-ADDRESS) still gives reachability and the mapped address; the probe
// says what it could not test.
func TestProbeOnePortServer(t *testing.T) {
	server, _ := startSTUN(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := natprobe.Probe(ctx, natprobe.Config{Server: server.String(), LocalAddr: "127.0.0.1:0", Retransmit: 50 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, res.Local, res.Mapped)
	assert.False(t, res.Other.IsValid())
	assert.Equal(t, natprobe.FilteringUnknown, res.Filtering)
	assert.Equal(t, natprobe.MappingNone, res.Mapping)
}

// No answer at all is ErrNoUDP, after the configured attempts; a bad server address is an error at once.
func TestProbeNoAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close() // bound and silent
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = natprobe.Probe(ctx, natprobe.Config{Server: pc.LocalAddr().String(), Retransmit: 20 * time.Millisecond, Attempts: 3})
	assert.ErrorIs(t, err, natprobe.ErrNoUDP)
	assert.Less(t, time.Since(start), 10*time.Second)

	_, err = natprobe.Probe(ctx, natprobe.Config{Server: "no-port"})
	assert.Error(t, err)
	assert.False(t, errors.Is(err, natprobe.ErrNoUDP))
}
