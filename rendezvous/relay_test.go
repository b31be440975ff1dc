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

func TestDirectCandidates(t *testing.T) {
	ap := netip.MustParseAddrPort
	lan := utp.Candidate{Kind: utp.CandidateHost, Addr: ap("192.168.1.5:5000")}
	lo := utp.Candidate{Kind: utp.CandidateHost, Addr: ap("127.0.0.1:5000")}
	srflx := func(a string, m utp.NATMapping) utp.Candidate {
		return utp.Candidate{Kind: utp.CandidateSrflx, Addr: ap(a), Mapping: m}
	}
	cases := []struct {
		name string
		nat  utp.NATReport
		want []utp.Candidate
	}{
		{"STUN failed", utp.NATReport{}, []utp.Candidate{lan}},
		{"mapping unknown", utp.NATReport{Reflexive: ap("203.0.113.9:6000"), Observed: []netip.AddrPort{ap("203.0.113.9:6000")}},
			[]utp.Candidate{srflx("203.0.113.9:6000", utp.MappingUnknown), lan}},
		{"a cone NAT: one reflexive candidate", utp.NATReport{Reflexive: ap("203.0.113.9:6000"),
			Observed: []netip.AddrPort{ap("203.0.113.9:6000"), ap("203.0.113.9:6000")}, Mapping: utp.MappingEndpointIndependent},
			[]utp.Candidate{srflx("203.0.113.9:6000", utp.MappingEndpointIndependent), lan}},
		{"a per-destination NAT: one per STUN address, in order", utp.NATReport{Reflexive: ap("203.0.113.9:6000"),
			Observed: []netip.AddrPort{ap("203.0.113.9:6000"), ap("203.0.113.9:6001")}, Mapping: utp.MappingPerDestination},
			[]utp.Candidate{srflx("203.0.113.9:6000", utp.MappingPerDestination), srflx("203.0.113.9:6001", utp.MappingPerDestination), lan}},
		{"no NAT: the interface address says so", utp.NATReport{Reflexive: lan.Addr,
			Observed: []netip.AddrPort{lan.Addr, lan.Addr}, Mapping: utp.MappingEndpointIndependent},
			[]utp.Candidate{{Kind: utp.CandidateHost, Addr: lan.Addr, Mapping: utp.MappingEndpointIndependent}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, directCandidates([]utp.Candidate{lan, lo}, c.nat))
		})
	}
	many := make([]utp.Candidate, 40)
	for i := range many {
		many[i] = utp.Candidate{Kind: utp.CandidateHost, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 5000)}
	}
	assert.Len(t, directCandidates(many, utp.NATReport{}), maxDirectCandidates, "capped, leaving room for a relay")
}
