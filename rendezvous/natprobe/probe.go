// Package natprobe tells what a NAT between this machine and the internet will
// do to a hole-punching attempt, from a few STUN exchanges (RFC 5780) with a
// server that answers on two ports, as p2phttp's signalling server does.
//
// With one server address and two ports it can tell:
//   - whether UDP gets out at all, and the round-trip time;
//   - whether there is a NAT (the mapped address is one of ours);
//   - the mapping: one public port for every destination (endpoint
//     independent, punchable), or a new one per destination (what hard NATs
//     do, which defeats ordinary punching);
//   - the filtering: whether the NAT lets in packets from a port we never
//     sent to (a restricted or full cone) or only from the exact address and
//     port we sent to (port-restricted);
//   - hairpinning: whether a packet sent to our own public address comes back,
//     which two peers behind the same NAT need when they meet by public address.
//
// Telling address-dependent from port-dependent behaviour needs a second server
// IP address, which a one-host deployment does not have; Result says so.
package natprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Mapping is how a NAT chooses the public port for our socket.
type Mapping int

// Mapping behaviours.
const (
	MappingUnknown              Mapping = iota // the test could not be run
	MappingNone                                // no NAT: the server saw a local address of ours
	MappingEndpointIndependent                 // one public port for every destination
	MappingDestinationDependent                // a new public port per destination port or address
)

func (m Mapping) String() string {
	switch m {
	case MappingNone:
		return "no NAT"
	case MappingEndpointIndependent:
		return "endpoint-independent"
	case MappingDestinationDependent:
		return "destination-dependent"
	}
	return "unknown"
}

// Filtering is which inbound packets a NAT lets through to our socket.
type Filtering int

// Filtering behaviours.
const (
	FilteringUnknown        Filtering = iota // the test could not be run
	FilteringAddressOnly                     // any port of an address we sent to gets in (or anything at all)
	FilteringAddressAndPort                  // only the exact address and port we sent to gets in
)

func (f Filtering) String() string {
	switch f {
	case FilteringAddressOnly:
		return "address-dependent or open"
	case FilteringAddressAndPort:
		return "address-and-port-dependent"
	}
	return "unknown"
}

// Config says which server to ask and how patiently.
type Config struct {
	// Server is the STUN server as host:port. It must answer with OTHER-ADDRESS
	// and honour CHANGE-REQUEST (change port) for the mapping and filtering
	// tests; a plain STUN server still gives reachability and the mapped address.
	Server string
	// LocalAddr is the UDP address to bind, default ":0".
	LocalAddr string
	// Retransmit is the first wait for an answer before a request is sent again
	// (doubling each time); zero means 250 ms.
	Retransmit time.Duration
	// Attempts is how many times one request is sent before its test gives up;
	// zero means 4.
	Attempts int
}

// Result is what the probe found.
type Result struct {
	Local     netip.AddrPort // the socket the probe used
	Server    netip.AddrPort // the server's address, resolved
	Mapped    netip.AddrPort // our address as the server saw it; invalid when UDP got no answer
	Other     netip.AddrPort // the server's second address from OTHER-ADDRESS; invalid when it gave none
	RTT       time.Duration  // of the first answered request
	Mapping   Mapping
	Filtering Filtering
	// Hairpin reports whether a packet to our own public address came back;
	// nil when it was not tested (no NAT, or no mapped address).
	Hairpin *bool
	// Notes explain tests that could not be run or were inconclusive.
	Notes []string
}

// ErrNoUDP reports that no STUN answer came back at all: UDP to the server is
// blocked, or the server is down.
var ErrNoUDP = errors.New("natprobe: no answer over UDP")

// Probe runs the tests. It fails only when nothing could be learnt (the
// address does not resolve, the socket cannot be bound, or no answer came:
// ErrNoUDP); tests that could not be run are noted in the Result.
func Probe(ctx context.Context, cfg Config) (Result, error) {
	if cfg.LocalAddr == "" {
		cfg.LocalAddr = ":0"
	}
	if cfg.Retransmit <= 0 {
		cfg.Retransmit = 250 * time.Millisecond
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	server, err := resolve(ctx, cfg.Server)
	if err != nil {
		return Result{}, err
	}
	network := "udp4"
	if server.Addr().Is6() {
		network = "udp6"
	}
	pc, err := net.ListenPacket(network, cfg.LocalAddr)
	if err != nil {
		return Result{}, fmt.Errorf("natprobe: binding %s: %w", cfg.LocalAddr, err)
	}
	defer pc.Close()
	c := &client{pc: pc.(*net.UDPConn), cfg: cfg}
	res := Result{Local: pc.LocalAddr().(*net.UDPAddr).AddrPort(), Server: server}

	start := time.Now()
	first, err := c.binding(ctx, server, false)
	if err != nil {
		return res, fmt.Errorf("%w from %s: %w", ErrNoUDP, server, err)
	}
	res.RTT = time.Since(start)
	res.Mapped, res.Other = first.mapped, first.other

	if res.Other.IsValid() {
		// Ask the server to answer from its other port, which we have not
		// sent to yet: this test must come before the mapping test, whose
		// request to that port would open a port-restricted NAT to it.
		if _, err := c.binding(ctx, server, true); err == nil {
			res.Filtering = FilteringAddressOnly
		} else if errors.Is(err, errNoAnswer) {
			res.Filtering = FilteringAddressAndPort
		} else {
			res.Notes = append(res.Notes, fmt.Sprintf("filtering: %v", err))
		}
	}

	if isLocal(res.Mapped, res.Local) {
		res.Mapping = MappingNone
	} else if !res.Other.IsValid() {
		res.Notes = append(res.Notes, "the server gave no OTHER-ADDRESS, so mapping and filtering were not tested")
	} else {
		// Same server IP, the other port: a NAT that keeps our public port for
		// a new destination maps independently of the endpoint.
		alt := netip.AddrPortFrom(server.Addr(), res.Other.Port())
		if second, err := c.binding(ctx, alt, false); err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("mapping: no answer from the second port %s: %v", alt, err))
		} else if second.mapped == res.Mapped {
			res.Mapping = MappingEndpointIndependent
		} else {
			res.Mapping = MappingDestinationDependent
		}
	}

	if res.Mapping != MappingNone && res.Mapped.IsValid() {
		ok := c.hairpin(ctx, res.Mapped)
		res.Hairpin = &ok
	}
	if res.Mapping != MappingNone {
		res.Notes = append(res.Notes, "with one server address, address-dependent and port-dependent behaviour look alike")
	}
	return res, nil
}

func resolve(ctx context.Context, hostport string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("natprobe: server %q: %w", hostport, err)
	}
	ua, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ua) == 0 {
		return netip.AddrPort{}, fmt.Errorf("natprobe: resolving %q: %w", host, err)
	}
	pa, err := net.DefaultResolver.LookupPort(ctx, "udp", port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("natprobe: port %q: %w", port, err)
	}
	return netip.AddrPortFrom(ua[0].Unmap(), uint16(pa)), nil
}

// isLocal reports whether the server saw the very address we bound, or one of
// our interface addresses with our port: no NAT rewrote it.
func isLocal(mapped, local netip.AddrPort) bool {
	if mapped.Port() != local.Port() {
		return false
	}
	if mapped.Addr() == local.Addr() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == mapped.Addr() {
			return true
		}
	}
	return false
}
