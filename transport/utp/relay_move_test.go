package utp

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// movePath is a path (not connected) whose peer offered a relayed address, on a Transport with a relay of its own
// (not allocated: its routes only name it). Every address is a loopback one: relayMoved punches what it is told.
func movePath(t *testing.T) (p *Path, ours *Relay, peerRelay netip.AddrPort) {
	t.Helper()
	tr := listen(t, Config{})
	peerRelay = netip.MustParseAddrPort("127.0.0.7:4000")
	p, err := tr.newPath(Peer{Key: bytes.Repeat([]byte{3}, 32)}, []Candidate{
		{Kind: CandidateSrflx, Addr: netip.MustParseAddrPort("127.0.0.2:5000")},
		{Kind: CandidateRelay, Addr: peerRelay},
	})
	require.NoError(t, err)
	ours = &Relay{t: tr, addr: netip.MustParseAddrPort("127.0.0.8:6000"), done: make(chan struct{})}
	return p, ours, peerRelay
}

// TestRelayRoutePreference: relay to relay wins over a route through one allocation only with a peer that does not
// announce its relay moves; routes to a relayed address the peer retired, or through a relay of ours that retires,
// lose to any other.
func TestRelayRoutePreference(t *testing.T) {
	p, ours, peerRelay := movePath(t)
	peerNAT := netip.MustParseAddrPort("127.0.0.2:5001")
	r2r := ours.route(peerRelay)                  // our allocation to the peer's
	toPeerRelay := newDirectRoute(p.t, peerRelay) // our socket to the peer's allocation
	toPeerNAT := ours.route(peerNAT)              // our allocation to the peer's NAT
	p.mu.Lock()
	defer p.mu.Unlock()
	require.True(t, p.relayToRelay(r2r))
	require.False(t, p.relayToRelay(toPeerRelay))
	require.False(t, p.relayToRelay(toPeerNAT))

	require.True(t, p.betterRelayRoute(r2r, toPeerRelay), "an older peer: relay to relay first")
	require.True(t, p.betterRelayRoute(r2r, toPeerNAT), "an older peer: relay to relay first")
	p.sel.peerMoves = true
	require.True(t, p.betterRelayRoute(toPeerRelay, r2r), "a peer that announces: one allocation first")
	require.True(t, p.betterRelayRoute(toPeerNAT, r2r), "a peer that announces: one allocation first")
	require.False(t, p.betterRelayRoute(toPeerNAT, toPeerRelay), "two single-allocation routes tie")

	p.sel.peerRetired = []netip.AddrPort{peerRelay}
	require.True(t, p.betterRelayRoute(toPeerNAT, toPeerRelay), "the peer's retired relay loses")
	p.sel.peerRetired = nil
	ours.retiring.Store(true)
	require.True(t, p.betterRelayRoute(toPeerRelay, toPeerNAT), "a route through our retiring relay loses")
}

// TestRelayMoved: the peer's announcement replaces its old relayed address among the candidates; a late one, one
// to an address this socket cannot reach, and one beyond maxPeerRelays change nothing.
func TestRelayMoved(t *testing.T) {
	p, _, peerRelay := movePath(t)
	r := newDirectRoute(p.t, netip.MustParseAddrPort("127.0.0.1:9"))
	move := func(moved, old netip.AddrPort) {
		p.relayMoved(ctrlPacket{kind: kindRelayMove, body: relayMoveBody(moved, old)}, r)
	}
	relays := func() []netip.AddrPort {
		p.mu.Lock()
		defer p.mu.Unlock()
		var out []netip.AddrPort
		for _, c := range p.cands {
			if c.Kind == CandidateRelay {
				out = append(out, c.Addr)
			}
		}
		return out
	}
	next := netip.MustParseAddrPort("127.0.0.7:4001")
	move(next, peerRelay)
	require.Equal(t, []netip.AddrPort{next}, relays())
	require.True(t, p.sel.peerMoves)
	move(next, peerRelay) // a retry: idempotent
	require.Equal(t, []netip.AddrPort{next}, relays())
	move(peerRelay, netip.MustParseAddrPort("127.0.0.7:3999")) // late: the peer has moved on from peerRelay
	require.Equal(t, []netip.AddrPort{next}, relays())
	move(netip.MustParseAddrPort("[2001:db8::1]:4002"), next) // an IPv4 socket cannot reach it
	move(netip.MustParseAddrPort("127.0.0.7:0"), next)
	require.Equal(t, []netip.AddrPort{next}, relays())

	for i := range maxPeerRelays + 2 { // moves that retire addresses the peer never had: relays only add up
		move(netip.MustParseAddrPort(fmt.Sprintf("127.0.1.8:%d", 100+i)), netip.MustParseAddrPort(fmt.Sprintf("127.0.1.9:%d", 100+i)))
	}
	require.Len(t, relays(), maxPeerRelays)
	p.mu.Lock()
	require.Len(t, p.sel.peerRetired, maxPeerRetired)
	p.mu.Unlock()
}
