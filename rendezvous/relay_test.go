package rendezvous

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/p2phttp/p2phttp/transport/utp"
)

func TestOfferable(t *testing.T) {
	lo := utp.Candidate{Kind: utp.CandidateHost, Addr: netip.MustParseAddrPort("127.0.0.1:5000")}
	lan := utp.Candidate{Kind: utp.CandidateHost, Addr: netip.MustParseAddrPort("192.168.1.5:5000")}
	public := netip.MustParseAddrPort("203.0.113.9:6000")
	local := netip.MustParseAddrPort("127.0.0.1:5000")
	assert.Equal(t, []utp.Candidate{lan}, offerable([]utp.Candidate{lan, lo}, public), "a remote STUN server: no loopback")
	assert.Equal(t, []utp.Candidate{lan}, offerable([]utp.Candidate{lan, lo}, netip.AddrPort{}), "STUN failed: no loopback")
	assert.Equal(t, []utp.Candidate{lan, lo}, offerable([]utp.Candidate{lan, lo}, local), "STUN server on this machine")
	assert.Equal(t, []utp.Candidate{lo}, offerable([]utp.Candidate{lo}, netip.AddrPort{}), "nothing else to offer")
}

func TestParseRelayURLs(t *testing.T) {
	got := parseRelayURLs([]string{"turn:203.0.113.9:3478?transport=udp", "turn:203.0.113.9:3478?transport=tcp",
		"turns:203.0.113.9:5349?transport=tcp", "turn:[2001:db8::1]:3478", "stun:203.0.113.9:3478", "turn:?transport=udp",
		"turn:203.0.113.9:3478?transport=sctp"})
	assert.Equal(t, []relayServer{{addr: "203.0.113.9:3478"}, {addr: "203.0.113.9:3478", tcp: true}, {addr: "[2001:db8::1]:3478"}}, got)
}
