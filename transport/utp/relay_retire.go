package utp

import (
	"net/netip"
	"slices"
	"time"
)

// Retiring a relay. A TURN allocation lives only as long as the credentials it was made with can refresh it (and
// its permissions and channels): pion's client cannot change them on an allocation, and TURN servers may insist on
// the same username anyway. So a peer whose credentials near their expiry makes a new allocation with fresh ones
// and retires the old: every path whose route (or fallback) goes through it punches the peer's addresses through
// the Transport's other relays, and moves to the first of those routes that answers, as it would to a better route.
// Permissions are per IP address, so a relay route to an address the old allocation reached (the peer's relayed
// address above all, on the same relay server) works at once from a new allocation on the same server. The peer
// learns the new relayed address from our announcement (relay_move.go) and punches it, or follows the move when our
// datagrams arrive from it. Streams never notice; Close releases the old allocation once the paths moved (or when
// its credentials expire, whichever the caller decides).

const (
	// retirePunchFirst and retirePunchMax bound the time between rounds of punches through the other relays while
	// a relay retires: quick at first, then slower while a path still cannot move.
	retirePunchFirst = 100 * time.Millisecond
	retirePunchMax   = 2 * time.Second
	// relayRecvRecent: a relay that carried a peer's datagram this recently is in use.
	relayRecvRecent = time.Second
)

// When both peers retire at once, each may move to the other's retiring relay and then follow the other's datagrams
// back and forth. So only the acceptor follows the peer onto a route through a relay of its own that it retires; the
// dialler never does, and the acceptor's own retiring then moves both onto new allocations (heardOn).

// Retire marks r as on its way out: the Transport's paths announce the relayed addresses of its other relays to their
// peers as r's replacements, and move their routes through r to routes through those relays (or straight ones, or
// from the peer's socket to a replacement) as soon as those answer; r keeps carrying what still goes through it
// until Close. Call it once a replacement relay is allocated; Retiring then reports true.
func (r *Relay) Retire() {
	if !r.retiring.CompareAndSwap(false, true) {
		return
	}
	r.t.log.Debug("utp: retiring relay", "server", r.server, "relayed", r.addr)
	// The first round runs now, so that InUse reports the announcements it leaves pending from the start.
	r.retireRound()
	r.wg.Add(1)
	go r.retireLoop()
}

// Retiring reports whether Retire was called.
func (r *Relay) Retiring() bool { return r.retiring.Load() }

// InUse reports whether a path of the Transport still sends through r (its route, or the relay route it would
// fall back on), or a peer sent through it in the last second (its path still sends to r's address: it follows
// ours once our datagrams reach it from elsewhere), or a peer has not yet acknowledged the announcement of r's
// replacement (the rounds of announcement end with Close). A retired relay not in use can be closed without a path
// noticing.
func (r *Relay) InUse() bool {
	if time.Since(time.Unix(0, r.lastRecv.Load())) < relayRecvRecent {
		return true
	}
	for _, p := range r.t.pathList() {
		if p.usesRelay(r) {
			return true
		}
	}
	return false
}

func (r *Relay) retireLoop() {
	defer r.wg.Done()
	every := retirePunchFirst
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		r.retireRound()
		every = min(2*every, retirePunchMax)
		t.Reset(every)
	}
}

// retireRound punches around the retiring r on every path that still goes through it, and announces its
// replacements to every peer that has not acknowledged them.
func (r *Relay) retireRound() {
	var others []*Relay
	for _, o := range r.t.readyRelays() {
		if !o.retiring.Load() {
			others = append(others, o)
		}
	}
	for _, p := range r.t.pathList() {
		p.punchAround(r, others)
		p.announceMoves(r, others)
	}
}

// pathList is a snapshot of the Transport's paths.
func (t *Transport) pathList() []*Path {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Path, 0, len(t.paths))
	for p := range t.paths {
		out = append(out, p)
	}
	return out
}

// betterRelayRoute reports whether r is a better relay route than cur (both relayed): one that goes neither through
// a relay we retire nor to a relayed address the peer retires, over one that does; then, with a peer that announces
// its relay moves (relay_move.go), a route through one allocation over one from our relay to the peer's, which
// costs the relay server twice the work for every datagram; with an older peer, relay to relay over a route that
// leaves or enters either relay through a NAT. Relay to relay is the route that survives either side replacing its
// allocation unannounced: permissions are per IP address, so the new allocation reaches the peer's relay at once,
// and the peer, whose datagrams come from its relay, reaches our new one likewise, even through NATs that admit
// only the exact address they sent to. Called with p.mu held.
func (p *Path) betterRelayRoute(r, cur route) bool {
	if p.retired(cur) != p.retired(r) {
		return p.retired(cur)
	}
	r2r := p.relayToRelay(r)
	return r2r != p.relayToRelay(cur) && r2r != p.sel.peerMoves
}

// relayToRelay reports whether rt goes through a relay of ours to a relay address of the peer: one it offered or
// announced, or with an older peer, any address on a relay server (it may have moved unannounced). Called with p.mu
// held.
func (p *Path) relayToRelay(rt route) bool {
	if _, ok := rt.(*relayRoute); !ok {
		return false
	}
	if !p.sel.peerMoves {
		return p.onRelayAddr(rt.peerAddr())
	}
	a := rt.peerAddr()
	return p.peerRetiredAddr(a) || slices.ContainsFunc(p.cands, func(c Candidate) bool { return c.Kind == CandidateRelay && c.Addr == a })
}

// viaRetiring reports whether rt goes through a relay of ours that is retiring.
func viaRetiring(rt route) bool {
	rr, ok := rt.(*relayRoute)
	return ok && rr.r.retiring.Load()
}

// usesRelay reports whether the path's route or its relay fallback goes through r.
func (p *Path) usesRelay(r *Relay) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err == nil && (goesThrough(p.loadRoute(), r) || goesThrough(p.sel.backup, r) || p.announcing(r))
}

// goesThrough reports whether rt is a route through our relay r.
func goesThrough(rt route, r *Relay) bool {
	rr, ok := rt.(*relayRoute)
	return ok && rr.r == r
}

// punchAround punches, when the path's route or fallback goes through the retiring relay old, the addresses the
// peer may answer on (those its current routes reach, and its candidates but host and retired ones)
// straight and through each relay of others; punchAnswered moves the path to the first that answers, then to a
// relay-to-relay route if one answers too.
func (p *Path) punchAround(old *Relay, others []*Relay) {
	p.mu.Lock()
	cur, backup := p.loadRoute(), p.sel.backup
	if p.err != nil || !p.established || (!goesThrough(cur, old) && !goesThrough(backup, old)) {
		p.mu.Unlock()
		return
	}
	var addrs []netip.AddrPort
	add := func(a netip.AddrPort) {
		for _, b := range addrs {
			if a == b {
				return
			}
		}
		addrs = append(addrs, a)
	}
	add(cur.peerAddr())
	if backup != nil {
		add(backup.peerAddr())
	}
	// The peer's current address may be a NAT's, which admits only the relay it sent to, or a relayed one while
	// the peer's NAT admits the new relay (the single-allocation route) once it sent there: try its candidates too.
	// Sending to them through the new relay also gives their IP addresses permissions on it, so the peer can reach
	// the new relayed address we announce. An older peer's candidates may name allocations it has retired
	// unannounced: those punches go nowhere.
	for _, c := range p.cands {
		if c.Kind != CandidateHost && !p.peerRetiredAddr(c.Addr) {
			add(c.Addr)
		}
	}
	p.mu.Unlock()
	for _, a := range addrs {
		p.sendCtrl(newDirectRoute(p.t, a), kindPunch, u64(p.instance), true)
		for _, o := range others {
			p.sendCtrl(o.route(a), kindPunch, u64(p.instance), true)
		}
	}
}

// onRelayAddr reports whether addr is on a relay server: the IP address of a relay candidate of the peer (or of a
// relayed address it retired), or of a relayed address of ours. The peer's datagrams come from such an address when they go through its relay: when it
// moved to a new allocation (whose address it never offered) that is still a relay route, not a direct one.
// Called with p.mu held.
func (p *Path) onRelayAddr(addr netip.AddrPort) bool {
	for _, c := range p.cands {
		if c.Kind == CandidateRelay && c.Addr.Addr() == addr.Addr() {
			return true
		}
	}
	for _, a := range p.sel.peerRetired {
		if a.Addr() == addr.Addr() {
			return true
		}
	}
	for _, r := range p.t.readyRelays() {
		if r.addr.Addr() == addr.Addr() {
			return true
		}
	}
	return false
}
