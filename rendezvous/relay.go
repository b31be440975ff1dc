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

// Relay renewal. A TURN allocation lives only as long as the credentials it was made with: the relay refuses to
// refresh it, or its permissions and channels, once they expired, and pion's TURN client cannot change the
// credentials of an allocation. So before they expire a peer gets fresh ones (a host with every poll, a guest from
// the signalling server with the renewal token of its meeting), allocates again with them, and retires the old
// allocation: its paths move to routes through the new one (utp.Relay.Retire), then it is released.

const (
	// relayRenewBefore: a peer renews this long before its credentials expire, or halfway through their life
	// when that is shorter.
	relayRenewBefore = 2 * time.Minute
	// relayRetireQuiet is how long a retired allocation must have carried no path before it is released early;
	// at the latest it goes when its credentials expire.
	relayRetireQuiet = 3 * time.Second
	// relayRetryEvery bounds the pause before another try when a renewal failed.
	relayRetryEvery = 5 * time.Second
)

// renewAt is when to renew credentials that expire at expires and were received at got.
func renewAt(expires, got time.Time) time.Time {
	return expires.Add(-min(relayRenewBefore, expires.Sub(got)/2))
}

// retireRelay retires old, replaced by a new allocation: paths move off it, and it is closed once none has used it
// for relayRetireQuiet, or when its credentials expire.
func retireRelay(old *utp.Relay, expires time.Time) {
	old.Retire()
	go func() {
		tick := time.NewTicker(relayRetireQuiet / 4)
		defer tick.Stop()
		end := time.NewTimer(time.Until(expires))
		defer end.Stop()
		var idleSince time.Time
		for {
			select {
			case <-old.Done():
				return
			case <-end.C:
				old.Close()
				return
			case now := <-tick.C:
				switch {
				case old.InUse():
					idleSince = time.Time{}
				case idleSince.IsZero():
					idleSince = now
				case now.Sub(idleSince) >= relayRetireQuiet:
					old.Close()
					return
				}
			}
		}
	}()
}

// guestRelay keeps a guest's relay allocation alive for as long as its session lasts: it renews the credentials
// with the meeting's renewal token before they expire, allocates with the fresh ones and retires the old
// allocation.
type guestRelay struct {
	cfg      *Config
	client   *signal.Client
	tr       *utp.Transport
	udpWorks bool

	relay *utp.Relay
	info  *signal.RelayInfo
	got   time.Time // when info arrived
}

// keep runs until ctx ends or the server stops renewing (its limit passed): the allocation then lapses with its
// credentials, and the path goes on over whatever route is left.
func (g *guestRelay) keep(ctx context.Context) {
	log := g.cfg.Logger
	next := renewAt(g.info.Expires, g.got)
	dead := g.relay.Done()
	for {
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-dead: // the allocation ended early (the relay restarted, its lifetime cap): now
			timer.Stop()
			dead = nil
		case <-timer.C:
		}
		err := g.renew(ctx)
		switch {
		case err == nil:
			next, dead = renewAt(g.info.Expires, g.got), g.relay.Done()
			continue
		case ctx.Err() != nil:
			return
		case errors.Is(err, errRenewalOver):
			log.Warn("the relay stops carrying this session when its credentials expire", "expires", g.info.Expires, "err", err)
			return
		}
		log.Warn("cannot renew the relay allocation; retrying", "err", err)
		next = time.Now().Add(min(relayRetryEvery, max(time.Until(g.info.Expires)/4, 100*time.Millisecond)))
	}
}

var errRenewalOver = errors.New("relay renewal refused")

// renew fetches fresh credentials, allocates with them and retires the current allocation.
func (g *guestRelay) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ServerTimeout+g.cfg.RelayTimeout)
	defer cancel()
	fresh, err := g.client.RenewRelay(ctx, g.info)
	var se *signal.Error
	if errors.As(err, &se) || errors.Is(err, signal.ErrNoRenewal) {
		return fmt.Errorf("%w: %w", errRenewalOver, err)
	}
	if err != nil {
		return err
	}
	got := time.Now()
	r, err := allocateRelay(ctx, g.cfg, g.tr, fresh, g.udpWorks)
	if err != nil {
		return err
	}
	old, oldExpires := g.relay, g.info.Expires
	g.relay, g.info, g.got = r, fresh, got
	retireRelay(old, oldExpires)
	g.cfg.Logger.Debug("relay credentials renewed", "relayed", r.Addr(), "expires", fresh.Expires, "retired", old.Addr())
	return nil
}
