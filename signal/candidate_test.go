package signal

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateCandidateMapping(t *testing.T) {
	addr := netip.MustParseAddrPort("198.51.100.7:4000")
	cases := []struct {
		c  Candidate
		ok bool
	}{
		{Candidate{Kind: KindSrflx, Addr: addr}, true},
		{Candidate{Kind: KindSrflx, Addr: addr, Mapping: MappingPerDestination}, true},
		{Candidate{Kind: KindSrflx, Addr: addr, Mapping: MappingEndpointIndependent}, true},
		{Candidate{Kind: KindHost, Addr: addr, Mapping: MappingEndpointIndependent}, true},
		{Candidate{Kind: KindRelay, Addr: addr, Mapping: MappingPerDestination}, false},
		{Candidate{Kind: KindSrflx, Addr: addr, Mapping: "symmetric"}, false},
	}
	for _, c := range cases {
		err := validateCandidates([]Candidate{c.c}, DefaultMaxCandidates)
		if c.ok {
			require.NoError(t, err, "%+v", c.c)
		} else {
			require.ErrorIs(t, err, ErrBadCandidates, "%+v", c.c)
		}
	}
}

// The mapping travels in the candidate's JSON only when known, so a candidate without one reads as before.
func TestCandidateMappingJSON(t *testing.T) {
	addr := netip.MustParseAddrPort("198.51.100.7:4000")
	b, err := json.Marshal(Candidate{Kind: KindHost, Addr: addr})
	require.NoError(t, err)
	require.JSONEq(t, `{"kind":"host","addr":"198.51.100.7:4000"}`, string(b))
	b, err = json.Marshal(Candidate{Kind: KindSrflx, Addr: addr, Mapping: MappingPerDestination})
	require.NoError(t, err)
	require.JSONEq(t, `{"kind":"srflx","addr":"198.51.100.7:4000","mapping":"per-destination"}`, string(b))
}
