package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/transport/utp"
)

// relayServer is one TURN server a RelayInfo names.
type relayServer struct {
	addr string // host:port
	tcp  bool
}

// parseRelayURLs reads TURN URIs (RFC 7065: "turn:host:port?transport=udp|tcp"); what it cannot use (turns:, other
// schemes, other transports) it skips.
func parseRelayURLs(urls []string) []relayServer {
	var out []relayServer
	for _, s := range urls {
		rest, ok := strings.CutPrefix(s, "turn:")
		if !ok {
			continue
		}
		hostport, query, _ := strings.Cut(rest, "?")
		q, err := url.ParseQuery(query)
		if err != nil || hostport == "" {
			continue
		}
		switch q.Get("transport") {
		case "", "udp":
			out = append(out, relayServer{addr: hostport})
		case "tcp":
			out = append(out, relayServer{addr: hostport, tcp: true})
		}
	}
	return out
}

// allocateRelay makes a TURN allocation on tr with the credentials info carries: over UDP (the socket the path
// uses) first, over TCP when UDP fails; TCP first when STUN already failed, since UDP is then likely blocked. All
// attempts together take at most RelayTimeout, shared out evenly, so a relay that cannot be reached delays a
// guest's meeting by that much at most.
func allocateRelay(ctx context.Context, cfg *Config, tr *utp.Transport, info *signal.RelayInfo, udpWorks bool) (*utp.Relay, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.RelayTimeout)
	defer cancel()
	servers := parseRelayURLs(info.URLs)
	if !udpWorks {
		// Stable: TCP servers first, each list in the server's order.
		var tcp, udp []relayServer
		for _, s := range servers {
			if s.tcp {
				tcp = append(tcp, s)
			} else {
				udp = append(udp, s)
			}
		}
		servers = append(tcp, udp...)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("no usable TURN URL in %q", info.URLs)
	}
	var errs []error
	deadline, _ := ctx.Deadline()
	for i, s := range servers {
		actx, cancel := context.WithTimeout(ctx, time.Until(deadline)/time.Duration(len(servers)-i))
		r, err := tr.AllocateRelay(actx, utp.RelayConfig{Server: s.addr, TCP: s.tcp, Username: info.Username, Password: info.Password})
		cancel()
		if err == nil {
			cfg.Logger.Debug("relay allocated", "server", s.addr, "tcp", s.tcp, "relayed", r.Addr())
			return r, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// offerable drops loopback candidates unless the peer can only be on this machine: a loopback address names a
// different socket on the peer's machine, so it is offered only when our STUN server saw us from loopback (it runs
// here, so any peer meeting through it does too) or there is nothing else to offer.
func offerable(cands []utp.Candidate, reflexive netip.AddrPort) []utp.Candidate {
	if reflexive.IsValid() && reflexive.Addr().IsLoopback() {
		return cands
	}
	var out []utp.Candidate
	for _, c := range cands {
		if !c.Addr.Addr().IsLoopback() {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return cands
	}
	return out
}

// Route says which route carries a session's path: a relay or a direct pair (see utp.PathRoute).
type Route = utp.PathRoute

// Route says which route carries the path now: through a relay, or direct.
func (s *Session) Route() Route { return s.path.Route() }

// RouteChanged returns a channel closed when the path next moves to another route: from the relay to a direct
// pair once one works, and back when it dies. Route then says which.
func (s *Session) RouteChanged() <-chan struct{} { return s.path.RouteChanged() }

// DescribeRoute says in a few words which route carries a path, e.g. "relay 203.0.113.9 (rtt 41ms)" or "a
// direct path (rtt 23ms)".
func DescribeRoute(r Route) string {
	rtt := r.RTT.Round(time.Millisecond)
	if r.RTT < 10*time.Millisecond {
		rtt = r.RTT.Round(10 * time.Microsecond)
	}
	if r.Relayed {
		return fmt.Sprintf("relay %s (rtt %v)", r.Relay.Addr(), rtt)
	}
	return fmt.Sprintf("a direct path (rtt %v)", rtt)
}
