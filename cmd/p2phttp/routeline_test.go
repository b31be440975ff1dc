package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/p2phttp/p2phttp/rendezvous"
)

func TestRouteLines(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	relayed := rendezvous.Route{Relayed: true, Relay: netip.MustParseAddrPort("203.0.113.9:3478"), RTT: 41 * time.Millisecond, Since: t0}
	direct := rendezvous.Route{Remote: netip.MustParseAddrPort("198.51.100.7:4000"), RTT: 23 * time.Millisecond, Since: t0.Add(1300 * time.Millisecond)}
	r := rendezvous.Report{Route: relayed, Signal: 50 * time.Millisecond, Total: 470 * time.Millisecond}
	assert.Equal(t, "connected via relay 203.0.113.9 (rtt 41ms), set up in 420ms", describePath(r))
	assert.Equal(t, "upgraded to a direct path after 1.3s (rtt 23ms)", describeRouteChange(relayed, direct))
	back := relayed
	back.Since = direct.Since.Add(2 * time.Second)
	assert.Equal(t, "the direct path died after 2s; back on relay 203.0.113.9 (rtt 41ms)", describeRouteChange(direct, back))
	rebound := direct
	rebound.Remote = netip.MustParseAddrPort("198.51.100.7:4001")
	assert.Equal(t, "", describeRouteChange(direct, rebound), "a move between direct routes is not news")
}
