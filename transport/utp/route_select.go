package utp

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Route selection. A path starts on the first route whose punch was answered, relay or direct, so the first stream
// never waits for punching to succeed everywhere. Punching goes on: a punch answered on a better route moves the
// path there at once (host pairs over server-reflexive or peer-reflexive ones over relays). While a direct route
// carries the path, a relay route is kept alive with a probe every Config.KeepaliveInterval; when Config's
// fallbackAfterLost probes in a row go unanswered on the direct route, the path falls back on the relay and punches
// the direct candidates again, more and more slowly (up to maxUpgradeInterval between rounds). Nothing above the
// path notices a move except RouteChanged.

// Route ranks.
const (
	rankRelay = iota // through a TURN relay, ours or the peer's
	rankReflexive
	rankHost
)

const (
	// fallbackAfterLost is how many probes in a row the direct route may lose, while nothing else arrives on it,
	// before the path falls back on the relay.
	fallbackAfterLost = 3
	// maxUpgradeInterval bounds the time between two rounds of punches towards a better route.
	maxUpgradeInterval = 5 * time.Second
	// routeQuiet: a datagram on a worse route moves the path only after the current route was silent this long.
	routeQuiet = time.Second
)

// routeSel is the route-selection state of a path, guarded by Path.mu except curRecv.
type routeSel struct {
	curRecv atomic.Int64 // unix nanoseconds of the last fresh datagram the peer sent on the current route

	backup       route         // a relay route the peer answered on: where a failing direct route falls back
	backupRTT    time.Duration // its round-trip time
	lostInRow    int           // probes on the current route lost since the last echo
	since        time.Time     // when the current route started carrying the path
	changed      chan struct{} // closed at the next change of route
	upgradeEvery time.Duration // between rounds of punches towards a better route
	nextUpgrade  time.Time
	nextKeep     time.Time // the next relay keepalive

	// Relay moves (relay_move.go).
	peerMoves   bool                          // the peer announces its relay moves (flagRelayMoves)
	peerRetired []netip.AddrPort              // relayed addresses the peer announced it retires, oldest first
	moves       map[netip.AddrPort]*relayMove // our moves announced to the peer, by the relayed address moved to
}

// PathRoute describes the route that carries a path.
type PathRoute struct {
	// Relayed is true when the path goes through a TURN relay (this side's or the peer's).
	Relayed bool
	// Relay is the relay's address when Relayed: our TURN server's, or the relayed address the peer offered.
	Relay netip.AddrPort
	// Remote is the peer's address on the route (where its datagrams come from).
	Remote netip.AddrPort
	// Host is true for a host-to-host pair: no NAT between the peers.
	Host bool
	// RTT is the path's smoothed round-trip time (at first, that of the punch that proved the route).
	RTT time.Duration
	// Since is when the route began carrying the path.
	Since time.Time
}

// Route says which route carries the path now.
func (p *Path) Route() PathRoute {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.loadRoute()
	if r == nil {
		return PathRoute{}
	}
	pr := PathRoute{Remote: r.peerAddr(), RTT: p.srtt, Since: p.sel.since}
	switch rk := p.rank(r); {
	case r.id().kind == routeRelay:
		pr.Relayed, pr.Relay = true, r.(*relayRoute).r.server
	case rk == rankRelay:
		pr.Relayed, pr.Relay = true, r.peerAddr()
	case rk == rankHost:
		pr.Host = true
	}
	return pr
}

// RouteChanged returns a channel closed when the path next moves to another route (Route then says which).
func (p *Path) RouteChanged() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sel.changed == nil {
		p.sel.changed = make(chan struct{})
	}
	return p.sel.changed
}

// routeChanged notes that the path moved, and has the loop probe the new route at once: the probe measures its RTT
// and, being the newest datagram the peer gets, moves the peer's side of the path there too even when no stream
// sends. Called by setRoute with p.mu held.
func (p *Path) routeChanged() {
	now := time.Now()
	p.sel.since = now
	p.sel.lostInRow = 0
	p.sel.curRecv.Store(now.UnixNano())
	p.lastProbe = time.Time{}
	select {
	case p.kick <- struct{}{}:
	default:
	}
	if p.sel.changed != nil {
		close(p.sel.changed)
	}
	p.sel.changed = make(chan struct{})
}

// rank says how good a route is (rankRelay, rankReflexive or rankHost). Called with p.mu held.
func (p *Path) rank(r route) int {
	if r.id().kind == routeRelay {
		return rankRelay
	}
	for _, c := range p.cands {
		if c.Addr == r.peerAddr() {
			return candidateRank(c.Kind)
		}
	}
	if r.id().sock != 0 || p.onHardNATPeer(r.peerAddr()) {
		return rankReflexive // a hard-NAT punch's route: a mapping of the peer's NAT, wherever the relay is
	}
	if p.onRelayAddr(r.peerAddr()) {
		return rankRelay // the peer's datagrams come through a relay allocation it never offered (a renewed one)
	}
	return rankReflexive // peer-reflexive
}

func candidateRank(k CandidateKind) int {
	switch k {
	case CandidateHost:
		return rankHost
	case CandidateRelay:
		return rankRelay
	}
	return rankReflexive
}

// punchAnswered handles a reply to a punch on r once the path has a route: a better route than the current one
// carries the path from now on (the reply proves it works both ways); a relay route becomes the backup. Called with
// p.mu held.
func (p *Path) punchAnswered(r route, seenAs netip.AddrPort, rtt time.Duration) {
	cur := p.loadRoute()
	if cur.id() == r.id() {
		return
	}
	rank := p.rank(r)
	if rank > p.rank(cur) || (rank == p.rank(cur) && p.betterRelayRoute(r, cur)) {
		p.log.Info("utp: better route", "from", cur.id(), "to", r.id(), "rtt", rtt)
		p.setRoute(r)
		p.seenAs = seenAs
		p.srtt = rtt
		return
	}
	if rank == rankRelay {
		p.backupAnswered(r, rtt)
	}
}

// backupAnswered notes that the peer answered on r, which is not the current route. Called with p.mu held.
func (p *Path) backupAnswered(r route, rtt time.Duration) {
	if p.rank(r) != rankRelay {
		return
	}
	if p.sel.backup == nil || p.sel.backup.id() == r.id() || p.sel.backupRTT == 0 || (p.retired(p.sel.backup) && !p.retired(r)) {
		p.sel.backup, p.sel.backupRTT = r, rtt
	}
}

// maintainRoutes runs on the path's loop once it is established: it falls back on the relay when the direct route
// stopped answering, punches towards better routes, and keeps the relay route alive. It returns how soon it wants
// to run again, and whether the current route is suspect (a probe went unanswered: probe fast to decide).
func (p *Path) maintainRoutes(now time.Time) (next time.Duration, suspect bool) {
	p.mu.Lock()
	cur := p.loadRoute()
	rank := p.rank(cur)
	// Lost probes alone do not condemn a route that still brings the peer's datagrams: an echo or two lost on a
	// lossy path, or a peer that was not scheduled for a moment, would otherwise bounce a busy path to the relay.
	quiet := now.Sub(time.Unix(0, p.sel.curRecv.Load())) >= p.probeLossAfter()
	if rank > rankRelay && p.sel.lostInRow >= fallbackAfterLost && quiet && p.sel.backup != nil {
		p.log.Info("utp: route lost, falling back on the relay", "route", cur.id(), "lost", p.sel.lostInRow, "to", p.sel.backup.id())
		rtt := p.sel.backupRTT
		p.setRoute(p.sel.backup)
		if rtt > 0 {
			p.srtt = rtt
		}
		rank = rankRelay
		p.sel.upgradeEvery, p.sel.nextUpgrade = 0, now
	}
	var better []route
	var moved []netip.AddrPort
	if rank < rankHost && !now.Before(p.sel.nextUpgrade) {
		for _, c := range p.cands {
			if candidateRank(c.Kind) > rank {
				better = append(better, newDirectRoute(p.t, c.Addr))
			}
		}
		moved = p.movedRelays()
		p.sel.upgradeEvery = min(max(2*p.sel.upgradeEvery, p.cfg.PunchInterval), maxUpgradeInterval)
		p.sel.nextUpgrade = now.Add(p.sel.upgradeEvery)
	}
	var keep route
	if rank > rankRelay && p.sel.backup != nil && !now.Before(p.sel.nextKeep) {
		keep = p.sel.backup
		p.sel.nextKeep = now.Add(p.cfg.KeepaliveInterval)
	}
	next = p.cfg.KeepaliveInterval
	if rank < rankHost {
		next = p.sel.nextUpgrade.Sub(now)
	}
	if p.sel.backup != nil && rank > rankRelay {
		next = min(next, p.sel.nextKeep.Sub(now))
	}
	suspect = p.sel.lostInRow > 0
	p.mu.Unlock()

	for _, r := range append(better, p.relayMoveRoutes(moved)...) {
		p.sendCtrl(r, kindPunch, u64(p.instance), true)
	}
	if keep != nil {
		p.sendCtrl(keep, kindProbe, nil, true)
	}
	return max(next, time.Millisecond), suspect
}
