//go:build linux

package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/nslab"
)

// syncBuf is a bytes buffer for a process's stderr, read while it runs.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// p2phttp doctor behind the lab's NATs, against p2phttp signal (with its relay) on the lab's internet, gives each
// NAT the verdict it deserves: a port-restricted cone punches with most peers, a symmetric NAT needs the relay, and
// a network without UDP gets the relay over TCP.
func TestDoctorBehindNATs(t *testing.T) {
	lab := nslab.Start(t, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "prc"}}},
		{NAT: nslab.Symmetric, Peers: []nslab.PeerConfig{{Name: "sym"}}},
		{NAT: nslab.FullCone, Peers: []nslab.PeerConfig{{Name: "full"}}},
		{NAT: nslab.PortRestrictedCone, BlockUDP: true, Peers: []nslab.PeerConfig{{Name: "noudp"}}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	httpAddr := netip.AddrPortFrom(nslab.PublicAddr, 8080).String()
	sig := lab.Public.Command(ctx, binary, "signal", "--http", httpAddr, "--stun", netip.AddrPortFrom(nslab.PublicAddr, 3478).String())
	var stderr syncBuf
	sig.Stderr = &stderr
	sig.Env = append(sig.Environ(), "P2PHTTP_TURN_SECRET=lab")
	require.NoError(t, sig.Start())
	t.Cleanup(func() { sig.Process.Kill(); sig.Wait() })
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "signalling server on http") },
		10*time.Second, 20*time.Millisecond, "signal did not start: %s", stderr.String())

	for _, c := range []struct {
		peer, mapping, filtering, verdict string
		udp                               bool
	}{
		{"prc", "endpoint-independent", "address-and-port-dependent", verdictDirect, true},
		{"sym", "destination-dependent", "address-and-port-dependent", verdictHardNAT, true},
		{"full", "endpoint-independent", "address-dependent or open", verdictDirect, true},
		{"noudp", "", "", verdictTCPRelay, false},
	} {
		t.Run(c.peer, func(t *testing.T) {
			cmd := lab.Peer(c.peer).Command(ctx, binary, "doctor", "--json", "--signal", "http://"+httpAddr)
			out, err := cmd.Output()
			require.NoError(t, err, "%s", out)
			var rep doctorReport
			require.NoError(t, json.Unmarshal(out, &rep), "%s", out)
			assert.True(t, rep.Signal.Reachable)
			assert.Equal(t, c.udp, rep.UDP.Reachable, rep.UDP.Error)
			assert.Equal(t, c.mapping, rep.UDP.Mapping)
			assert.Equal(t, c.filtering, rep.UDP.Filtering)
			require.Len(t, rep.Relays, 2)
			assert.Equal(t, c.udp, rep.Relays[0].Reachable, "relay over UDP: %s", rep.Relays[0].Error)
			assert.True(t, rep.Relays[1].Reachable, "relay over TCP: %s", rep.Relays[1].Error)
			assert.Equal(t, c.verdict, rep.Verdict)
		})
	}
}
