package utp

import (
	"net/netip"
	"slices"
	"time"
)

// Relay moves. A peer that replaces a relay allocation (Relay.Retire) tells each peer the new relayed address before
// the old one goes (kindRelayMove, sealed and replay-checked like every datagram, sent on the path's current route
// and its relay fallback), again each round of the retirement until the peer acknowledges it (kindRelayMoveAck), at
// most maxRelayMoveTries times. The peer then offers the new address as a relay candidate, forgets the old one, and
// punches the new one straight from its socket and through its own relays; the sender's new allocation already sent
// to the peer's addresses, which gave the peer's IP addresses the permissions TURN requires. So a path can leave the
// retiring allocation for a route through one allocation (our socket to the peer's, or ours to the peer's socket)
// rather than the relay-to-relay route, which takes every datagram through two allocations on the relay server. A
// peer that does not know the kinds drops them: only peers that set flagRelayMoves get them, and only with such a
// peer is a single-allocation route preferred (betterRelayRoute); with an older peer, relay to relay stays the route
// that survives its renewals.

const (
	// maxRelayMoveTries bounds the announcements of one relay move to a peer that does not acknowledge it.
	maxRelayMoveTries = 10
	// maxPeerRelays bounds the relay candidates a peer's moves can give a path.
	maxPeerRelays = 8
	// maxPeerRetired bounds the retired relayed addresses of the peer a path remembers.
	maxPeerRetired = 8
)

// relayMove is the state of the announcement of a relay move of ours to one peer.
type relayMove struct {
	from  netip.AddrPort // the relayed address moved from
	tries int
	acked bool
}

// announceMoves announces to the peer, in a round of the retirement of old, the relayed addresses of others that
// replace it, unless the peer acknowledged them or cannot read them, or they were announced maxRelayMoveTries times.
func (p *Path) announceMoves(old *Relay, others []*Relay) {
	p.mu.Lock()
	if p.err != nil || !p.established || !p.sel.peerMoves {
		p.mu.Unlock()
		return
	}
	if p.sel.moves == nil {
		p.sel.moves = make(map[netip.AddrPort]*relayMove)
	}
	for a := range p.sel.moves { // moves to relays since closed or retired
		if !slices.ContainsFunc(others, func(o *Relay) bool { return o.addr == a }) {
			delete(p.sel.moves, a)
		}
	}
	var bodies [][]byte
	for _, o := range others {
		m := p.sel.moves[o.addr]
		if m == nil {
			m = &relayMove{from: old.addr}
			p.sel.moves[o.addr] = m
		}
		if m.acked || m.tries >= maxRelayMoveTries {
			continue
		}
		m.tries++
		bodies = append(bodies, relayMoveBody(o.addr, old.addr))
	}
	routes := []route{p.loadRoute()}
	if b := p.sel.backup; b != nil && b.id() != routes[0].id() {
		routes = append(routes, b)
	}
	p.mu.Unlock()
	for _, b := range bodies {
		for _, rt := range routes {
			p.sendCtrl(rt, kindRelayMove, b, false)
		}
	}
}

// announcing reports whether the peer has yet to acknowledge a move from our relay r that is still announced.
// Called with p.mu held.
func (p *Path) announcing(r *Relay) bool {
	for _, m := range p.sel.moves {
		if m.from == r.addr && !m.acked && m.tries < maxRelayMoveTries {
			return true
		}
	}
	return false
}

// relayMoveAcked notes the peer's acknowledgement of a relay move.
func (p *Path) relayMoveAcked(c ctrlPacket) {
	moved := parseAddr(c.body)
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.sel.moves[moved]; m != nil {
		m.acked = true
	}
}

// relayMoved handles the peer's announcement that it moved from its relayed address old to moved, which came on r:
// moved replaces old among the peer's candidates, and is punched at once (and again with the rounds of punches
// towards better routes while the path still reaches the peer at a retired address: maintainRoutes).
func (p *Path) relayMoved(c ctrlPacket, r route) {
	moved, old := parseRelayMove(c.body)
	if !p.t.canReach(moved) || moved == old {
		p.log.Debug("utp: unusable relay move from the peer", "to", moved, "from", old)
		return
	}
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return
	}
	p.sel.peerMoves = true
	if slices.Contains(p.sel.peerRetired, moved) {
		p.mu.Unlock() // a late announcement of a move the peer has already moved on from
		return
	}
	if !slices.Contains(p.sel.peerRetired, old) {
		p.sel.peerRetired = append(p.sel.peerRetired, old)
		if len(p.sel.peerRetired) > maxPeerRetired {
			p.sel.peerRetired = slices.Delete(p.sel.peerRetired, 0, 1)
		}
	}
	// A new slice: readers iterate the old one without the lock (punch).
	cands := slices.DeleteFunc(slices.Clone(p.cands), func(c Candidate) bool { return c.Addr == old })
	relays := 0
	for _, c := range cands {
		if c.Kind == CandidateRelay {
			relays++
		}
	}
	switch {
	case slices.ContainsFunc(cands, func(c Candidate) bool { return c.Addr == moved }):
	case relays >= maxPeerRelays:
		p.log.Debug("utp: the peer moved to too many relays", "to", moved)
	default:
		cands = append(cands, Candidate{Kind: CandidateRelay, Addr: moved})
		p.log.Debug("utp: the peer moved its relay", "to", moved, "from", old)
	}
	p.cands = cands
	p.sel.upgradeEvery, p.sel.nextUpgrade = 0, time.Time{}
	p.mu.Unlock()

	p.sendCtrl(r, kindRelayMoveAck, appendAddr(make([]byte, 0, addrLen), moved), false)
	for _, rt := range p.relayMoveRoutes([]netip.AddrPort{moved}) {
		p.sendCtrl(rt, kindPunch, u64(p.instance), true)
	}
}

// relayMoveRoutes are the routes to the peer's relayed addresses addrs: straight from our socket, and through each
// of our relays that does not retire.
func (p *Path) relayMoveRoutes(addrs []netip.AddrPort) []route {
	var out []route
	relays := p.t.readyRelays()
	for _, a := range addrs {
		out = append(out, newDirectRoute(p.t, a))
		for _, o := range relays {
			if !o.retiring.Load() {
				out = append(out, o.route(a))
			}
		}
	}
	return out
}

// movedRelays lists the peer's relay candidates to punch while the path's route or fallback still reaches the peer
// at a relayed address it retires. Called with p.mu held.
func (p *Path) movedRelays() []netip.AddrPort {
	cur, backup := p.loadRoute(), p.sel.backup
	if !p.peerRetiredAddr(cur.peerAddr()) && (backup == nil || !p.peerRetiredAddr(backup.peerAddr())) {
		return nil
	}
	var out []netip.AddrPort
	for _, c := range p.cands {
		if c.Kind == CandidateRelay {
			out = append(out, c.Addr)
		}
	}
	return out
}

// peerRetiredAddr reports whether a is a relayed address the peer announced it retires. Called with p.mu held.
func (p *Path) peerRetiredAddr(a netip.AddrPort) bool { return slices.Contains(p.sel.peerRetired, a) }

// retired reports whether rt goes through a relay we retire or to a relayed address the peer retires. Called with
// p.mu held.
func (p *Path) retired(rt route) bool { return viaRetiring(rt) || p.peerRetiredAddr(rt.peerAddr()) }
