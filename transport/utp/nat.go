package utp

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// NATMapping is how the NAT in front of a socket picks the public port of its datagrams (RFC 4787's mapping
// behaviour), as STUN against two server addresses shows it. Peers tell each other theirs on their server-reflexive
// candidates (Candidate.Mapping): a path between a side whose NAT maps per destination and a side whose NAT does not
// is punched with many ports at once (see Config.HardNATSockets).
type NATMapping string

// Mapping behaviours.
const (
	// MappingUnknown: not tested (one STUN server address, or the second did not answer).
	MappingUnknown NATMapping = ""
	// MappingEndpointIndependent: one public port for every destination (no NAT, or a cone NAT): its
	// server-reflexive address is the one every peer reaches.
	MappingEndpointIndependent NATMapping = "endpoint-independent"
	// MappingPerDestination: a new public port for each destination (a symmetric or "hard" NAT): the
	// server-reflexive address is the mapping towards the STUN server only.
	MappingPerDestination NATMapping = "per-destination"
)

// NATReport is what STUN told a Transport about the NAT in front of its socket.
type NATReport struct {
	// Reflexive is our public address as the STUN server saw it (what DiscoverSTUN returns).
	Reflexive netip.AddrPort
	// Observed are our public addresses as each STUN address asked saw them, in the order asked: Reflexive, then
	// the one from the server's second address (OTHER-ADDRESS) when it answered. Under a NAT that allocates ports
	// in sequence, they show the step (see predictPorts).
	Observed []netip.AddrPort
	// Mapping compares them: the same address from both server addresses is endpoint-independent, two different
	// ones per-destination.
	Mapping NATMapping
}

// DiscoverNAT asks the STUN server (host:port) for our public address, as DiscoverSTUN does, and then asks the
// server's second address (its OTHER-ADDRESS, which the p2phttp signalling server gives: the same IP, another port)
// from the same socket, which tells how our NAT maps. Only the first answer is required: without a second address,
// or when it does not answer before ctx ends, the report's Mapping is MappingUnknown. The Transport keeps the report
// (NAT) and its paths act on it. Failures wrap ErrSTUN.
func (t *Transport) DiscoverNAT(ctx context.Context, server string) (NATReport, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.STUNTimeout)
		defer cancel()
	}
	start := time.Now()
	first, err := t.stunBinding(ctx, server)
	if err != nil {
		return NATReport{}, err
	}
	rtt := time.Since(start)
	rep := NATReport{Reflexive: first.addr, Observed: []netip.AddrPort{first.addr}}
	if other := otherAddress(server, first.other, t.network()); other.IsValid() {
		// The second address answers as fast as the first, unless something filters it: do not wait for long.
		sctx, cancel := context.WithTimeout(ctx, max(secondSTUNWait, 4*rtt))
		second, err := t.stunBinding(sctx, other.String())
		cancel()
		if err == nil {
			rep.Observed = append(rep.Observed, second.addr)
			rep.Mapping = MappingEndpointIndependent
			if second.addr != first.addr {
				rep.Mapping = MappingPerDestination
			}
		} else {
			t.log.Debug("utp: STUN's second address did not answer; NAT mapping unknown", "addr", other, "err", err)
		}
	}
	t.nat.Store(&rep)
	return rep, nil
}

// secondSTUNWait bounds the wait for the STUN server's second address (or four times the first one's round trip).
const secondSTUNWait = time.Second

// otherAddress is where to ask STUN a second time: the server's OTHER-ADDRESS, with the server's own IP when it
// named only a port (a server bound to every interface does not know its public address), or nothing when it gave
// none or gave the server's own address.
func otherAddress(server string, other netip.AddrPort, network string) netip.AddrPort {
	if !other.IsValid() || other.Port() == 0 {
		return netip.AddrPort{}
	}
	ua, err := net.ResolveUDPAddr(network, server)
	if err != nil {
		return netip.AddrPort{}
	}
	s, _ := addrPortOf(ua)
	if other.Addr().IsUnspecified() {
		other = netip.AddrPortFrom(s.Addr(), other.Port())
	}
	if other == s {
		return netip.AddrPort{}
	}
	return other
}

// NAT is the last report DiscoverNAT made, or the zero NATReport before one.
func (t *Transport) NAT() NATReport {
	if r := t.nat.Load(); r != nil {
		return *r
	}
	return NATReport{}
}

// maxSequentialStep is the largest step between the public ports of consecutive mappings that still looks like a
// NAT allocating ports in sequence (other hosts behind the same NAT take some of the ports in between).
const maxSequentialStep = 16

// predictPorts guesses the next n public ports a NAT allocating in sequence will give, from the ports it gave to
// the STUN server's addresses in the order asked: when each step is between 1 and maxSequentialStep (up or down,
// all the same way), the ports that follow the last one by multiples of the smallest step, skipping the privileged
// range. Ports a random allocator gave look like no sequence, and nothing is predicted.
func predictPorts(observed []uint16, n int) []uint16 {
	if len(observed) < 2 || n <= 0 {
		return nil
	}
	step := 0
	for i := 1; i < len(observed); i++ {
		d := int(observed[i]) - int(observed[i-1])
		if d == 0 || d > maxSequentialStep || d < -maxSequentialStep {
			return nil
		}
		if step != 0 && (d > 0) != (step > 0) {
			return nil
		}
		if step == 0 || abs(d) < abs(step) {
			step = d
		}
	}
	out := make([]uint16, 0, n)
	for p := int(observed[len(observed)-1]) + step; len(out) < n; p += step {
		if p > 65535 || p < 1024 {
			break
		}
		out = append(out, uint16(p))
	}
	return out
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// peerNAT is what a peer's candidates say of its NAT: its mapping, and for a per-destination one the public
// address and the ports its server-reflexive candidates show, in the order given.
type peerNAT struct {
	mapping NATMapping
	ip      netip.Addr
	ports   []uint16
}

// peerNATOf reads the peer's NAT from its server-reflexive candidates.
func peerNATOf(cands []Candidate) peerNAT {
	var n peerNAT
	for _, c := range cands {
		if c.Kind != CandidateSrflx || c.Mapping == MappingUnknown {
			continue
		}
		if n.mapping == MappingUnknown {
			n.mapping, n.ip = c.Mapping, c.Addr.Addr()
		}
		if c.Mapping == MappingPerDestination && c.Addr.Addr() == n.ip {
			n.ports = append(n.ports, c.Addr.Port())
		}
	}
	return n
}

// String names the mapping, "unknown" for MappingUnknown.
func (m NATMapping) String() string {
	if m == MappingUnknown {
		return "unknown"
	}
	return string(m)
}
