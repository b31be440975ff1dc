package signal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrBadCandidates reports a candidate list that is empty, too long or names an unusable address: ours, or the
// other side's as it arrived.
var ErrBadCandidates = errors.New("signal: bad candidates")

// Candidate kinds.
const (
	KindHost  = "host"  // an address of a local interface
	KindSrflx = "srflx" // server-reflexive: the public address STUN reported
	KindRelay = "relay" // relayed: an address a TURN relay allocated for the peer
)

// DefaultMaxCandidates is how many candidates a side may send.
const DefaultMaxCandidates = 16

// Candidate is an address where a peer may be reachable. Its JSON is the same as transport/utp.Candidate's:
// {"kind":"host","addr":"192.0.2.1:4000"}. Candidates only ever travel encrypted under the meeting's key.
type Candidate struct {
	Kind string         `json:"kind"`
	Addr netip.AddrPort `json:"addr"`
	// Mapping, on a host or server-reflexive candidate, says how the sender's NAT maps (MappingEndpointIndependent
	// or MappingPerDestination); empty when unknown.
	Mapping string `json:"mapping,omitempty"`
}

// NAT mappings a candidate may name: one public port for every destination, or a new one per destination (a
// symmetric NAT). They match transport/utp's NATMapping.
const (
	MappingEndpointIndependent = "endpoint-independent"
	MappingPerDestination      = "per-destination"
)

func validateCandidates(cs []Candidate, max int) error {
	if len(cs) == 0 || len(cs) > max {
		return fmt.Errorf("%w: want 1 to %d candidates, got %d", ErrBadCandidates, max, len(cs))
	}
	for i, c := range cs {
		if c.Kind != KindHost && c.Kind != KindSrflx && c.Kind != KindRelay {
			return fmt.Errorf("%w: candidate %d: kind %q is not %q, %q or %q", ErrBadCandidates, i, c.Kind, KindHost, KindSrflx, KindRelay)
		}
		if c.Mapping != "" && (c.Kind == KindRelay || c.Mapping != MappingEndpointIndependent && c.Mapping != MappingPerDestination) {
			return fmt.Errorf("%w: candidate %d: mapping %q is not %q or %q on a %s or %s candidate", ErrBadCandidates, i, c.Mapping,
				MappingEndpointIndependent, MappingPerDestination, KindHost, KindSrflx)
		}
		if !c.Addr.IsValid() || c.Addr.Port() == 0 || c.Addr.Addr().IsUnspecified() || c.Addr.Addr().Zone() != "" {
			return fmt.Errorf("%w: candidate %d: address %q is not a usable ip:port", ErrBadCandidates, i, c.Addr)
		}
	}
	return nil
}

// jsonErrorText shortens encoding/json's messages, which name Go types.
func jsonErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("invalid JSON: field %q has the wrong type (%s)", te.Field, te.Value)
	}
	return "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}
