package utp

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// Hard-NAT punching. A NAT that maps every destination to a new public port (symmetric, MappingPerDestination)
// gives the peer no address to punch: the port it opens towards the peer is not the one STUN saw. Against a peer
// whose NAT keeps one public port (MappingEndpointIndependent), the birthday paradox still finds a way:
//   - the hard side opens Config.HardNATSockets extra sockets and sends a sealed punch from each to the peer's
//     server-reflexive address, which makes as many mappings on its NAT, each on a port the peer cannot know, and
//     refreshes them;
//   - the easy side sends paced sealed punches (probes) from its one socket to the hard side's public address, each
//     to another port: first the ports that follow a sequence in the hard side's STUN observations (a NAT that
//     allocates in order), then random ones, up to Config.HardNATProbes. Each probe also opens the easy side's NAT
//     to that port.
// The first probe to hit one of the mappings reaches an extra socket, which answers; that socket carries the route
// (socketRoute), and the path moves to it as to any better route (route_select.go). The hard side closes its other
// sockets once a direct route carries the path, and all but the route's when Config.HardNATTimeout passes. Every
// punch and probe is a sealed datagram of the path: a stranger's or a replayed one gets no answer. A path back on the
// relay punches again (hardNATLoop). Two hard sides cannot meet this way (neither has an address to aim at); they
// stay on the relay.

// hardNATRefresh is how often the hard side sends a punch again from each extra socket: well under the 30 s that
// NATs keep an unanswered UDP mapping.
const hardNATRefresh = 5 * time.Second

// hardNATProbeDelay gives ordinary punching, and the hard side's sockets, a head start before probing.
const hardNATProbeDelay = 200 * time.Millisecond

// hardNATTick is how often the easy side wakes to send the probes due; each wake sends at most hardNATBurst times
// the probes due in one tick, so a stalled goroutine does not catch up in one burst.
const (
	hardNATTick  = 10 * time.Millisecond
	hardNATBurst = 4
)

// hardNATRetryDelay is how long after the path fell back on the relay from a direct route both sides punch again:
// long enough for the other side to notice the fallback too.
const hardNATRetryDelay = 2 * time.Second

// maxHardNATPeriod bounds the time between two punches that found no direct route.
const maxHardNATPeriod = 5 * time.Minute

// maxPredictedPorts bounds the ports probed first because they follow a sequence.
const maxPredictedPorts = 1024

// maxHardNATTargets bounds the peer addresses each extra socket punches.
const maxHardNATTargets = 2

// hardNATState is what a path learnt of the NATs from its punches, beyond what STUN and the peer said, and whether a
// hard-NAT punch runs. Guarded by Path.mu.
type hardNATState struct {
	running   bool
	checking  bool           // checkMappings runs
	localHard bool           // a punch reply showed the peer another public port of ours than STUN saw
	peerHard  netip.AddrPort // a punch came from the peer's public address on a port none of its candidates named
}

// startHardNAT starts a hard-NAT punch, once, when one side's NAT maps per destination and the other's does not (or
// is not known to): this side opens extra sockets when its own NAT is the hard one, and probes when the peer's is.
// What STUN said (Transport.NAT, the peer's Candidate.Mapping) is checked against what punches showed
// (learnMapping), so a NAT that happened to give STUN's two addresses the same port is still found out.
func (p *Path) startHardNAT() {
	nat := p.t.NAT()
	p.mu.Lock()
	if p.hard.running || p.err != nil {
		p.mu.Unlock()
		return
	}
	cands := slices.Clone(p.cands)
	local := nat.Mapping
	if p.hard.localHard {
		local = MappingPerDestination
	}
	peer := peerNATOf(cands)
	if a := p.hard.peerHard; a.IsValid() {
		peer = peerNAT{mapping: MappingPerDestination, ip: a.Addr()}
		for _, c := range cands {
			if c.Kind == CandidateSrflx && c.Addr.Addr() == a.Addr() {
				peer.ports = append(peer.ports, c.Addr.Port())
			}
		}
		peer.ports = append(peer.ports, a.Port())
	}
	var run func() *auxSocket
	switch {
	case local == MappingPerDestination && peer.mapping != MappingPerDestination && p.cfg.HardNATSockets > 0:
		var targets []netip.AddrPort
		for _, c := range cands {
			if (c.Kind == CandidateSrflx || c.Mapping != MappingUnknown) && len(targets) < maxHardNATTargets {
				targets = append(targets, c.Addr)
			}
		}
		if len(targets) > 0 {
			run = func() *auxSocket { return p.hardNATSockets(targets) }
		}
	case local != MappingPerDestination && peer.mapping == MappingPerDestination && p.cfg.HardNATProbes > 0:
		run = func() *auxSocket { p.hardNATProbes(peer); return nil }
	}
	p.hard.running = run != nil
	check := !p.hard.checking && run == nil && local != MappingPerDestination && peer.mapping != MappingPerDestination
	p.hard.checking = p.hard.checking || check
	p.mu.Unlock()
	if run != nil {
		go p.hardNATLoop(run)
	}
	if check {
		go p.checkMappings(cands)
	}
}

// mappingChecks are when, after Connect began, a path whose NATs look endpoint-independent punches the peer's relay
// candidates straight from its socket, for learnMapping: the peer's relay reports the public port our NAT gave
// that destination, and the reply says which port it saw. The punches of Connect do the same, but the first of
// them may reach the relay before it lets the peer's address in, and the path is on the relay at once.
var mappingChecks = []time.Duration{250 * time.Millisecond, time.Second, 3 * time.Second}

// checkMappings sends those punches until a hard-NAT punch runs, a direct route carries the path, or the path ends.
func (p *Path) checkMappings(cands []Candidate) {
	var relays []Candidate
	for _, c := range cands {
		if c.Kind == CandidateRelay {
			relays = append(relays, c)
		}
	}
	if len(relays) == 0 {
		return
	}
	start := time.Now()
	for _, at := range mappingChecks {
		select {
		case <-p.done:
			return
		case <-time.After(time.Until(start.Add(at))):
		}
		p.mu.Lock()
		running := p.hard.running
		p.mu.Unlock()
		if direct, _ := p.onDirectRoute(); direct || running {
			return
		}
		for _, c := range relays {
			p.sendCtrl(newDirectRoute(p.t, c.Addr), kindPunch, u64(p.instance), true)
		}
	}
}

// learnMapping checks an authenticated punch, or a reply to one of ours, for a NAT that maps per destination though
// STUN did not show it: a reply to a punch from our socket that saw us at our public address but another port than
// STUN did (ours), or a punch from the peer's public address on a port its candidates do not name (the peer's, when
// it said otherwise). Either starts a hard-NAT punch.
func (p *Path) learnMapping(r route, c ctrlPacket) {
	nat := p.t.NAT()
	id := r.id()
	learnt := false
	p.mu.Lock()
	switch c.kind {
	case kindPunchReply:
		seen := parseObserved(c.body)
		if !p.hard.localHard && id.kind == routeDirect && id.sock == 0 && nat.Mapping != MappingPerDestination &&
			nat.Reflexive.IsValid() && seen.Addr() == nat.Reflexive.Addr() && seen.Port() != nat.Reflexive.Port() {
			p.hard.localHard, learnt = true, true
			p.log.Debug("utp: our NAT maps per destination", "stun_saw", nat.Reflexive, "peer_saw", seen)
		}
	case kindPunch:
		from := r.peerAddr()
		if p.hard.peerHard.IsValid() || peerNATOf(p.cands).mapping == MappingPerDestination {
			break
		}
		public, named := false, false
		for _, c := range p.cands {
			if c.Kind == CandidateSrflx && c.Addr.Addr() == from.Addr() {
				public = true
			}
			if c.Kind != CandidatePrflx && c.Addr == from { // a relay candidate: the peer sent through its relay
				named = true
			}
		}
		if public && !named {
			p.hard.peerHard, learnt = from, true
			p.log.Debug("utp: the peer's NAT maps per destination", "punch_from", from)
		}
	}
	p.mu.Unlock()
	if learnt {
		p.startHardNAT()
	}
}

// hardNATLoop runs a hard-NAT punch (attempt, which returns the extra socket it kept for the path's route, if any)
// at once, and again whenever the established path is back on the relay: hardNATRetryDelay after a direct route it
// found died, or, when a punch found none, a period after that punch began (twice Config.HardNATTimeout, doubling
// up to maxHardNATPeriod). Both sides follow the same schedule, so their punches meet. The kept socket closes when
// the next punch begins or the path ends.
func (p *Path) hardNATLoop(attempt func() *auxSocket) {
	var kept *auxSocket
	defer func() {
		if kept != nil {
			kept.close()
		}
	}()
	period := 2 * p.cfg.HardNATTimeout
	for {
		start := time.Now()
		if s := attempt(); s != nil {
			kept = s
		}
		// Wait until the path is on the relay, noting whether a direct route carried it meanwhile.
		direct, _ := p.onDirectRoute()
		for !p.onRelay() {
			changed := p.RouteChanged()
			if d, _ := p.onDirectRoute(); d {
				direct = true
			}
			if p.onRelay() {
				break
			}
			select {
			case <-p.done:
				return
			case <-changed:
			}
		}
		next := start.Add(period)
		if direct {
			next, period = time.Now().Add(hardNATRetryDelay), 2*p.cfg.HardNATTimeout
		} else {
			period = min(2*period, maxHardNATPeriod)
		}
		p.log.Debug("utp: hard-NAT punch: on the relay; punching again", "in", time.Until(next).Round(time.Millisecond))
		select {
		case <-p.done:
			return
		case <-time.After(time.Until(next)):
		}
		if kept != nil {
			kept.close() // its route died
			kept = nil
		}
	}
}

// onRelay reports whether the established path runs on a relay.
func (p *Path) onRelay() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.loadRoute()
	return p.established && r != nil && p.rank(r) == rankRelay
}

// onDirectRoute reports whether a direct route carries the established path, and the extra socket it sends from
// (nil for the Transport's socket).
func (p *Path) onDirectRoute() (direct bool, sock *auxSocket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.loadRoute()
	if !p.established || r == nil || p.rank(r) == rankRelay {
		return false, nil
	}
	if sr, ok := r.(*socketRoute); ok {
		return true, sr.s
	}
	return true, nil
}

// hardNATSockets is the hard side: it opens the extra sockets, punches the peer's addresses from each until a
// direct route carries the path or Config.HardNATTimeout passes, then closes all but the route's socket, which it
// returns (nil when the route is not on one).
func (p *Path) hardNATSockets(targets []netip.AddrPort) *auxSocket {
	var socks []*auxSocket
	for i := range p.cfg.HardNATSockets {
		s, err := p.t.listenAux(i)
		if err != nil {
			p.log.Warn("utp: hard-NAT punch: cannot open more sockets", "open", len(socks), "err", err)
			break
		}
		socks = append(socks, s)
	}
	defer func() {
		for _, s := range socks {
			s.close()
		}
	}()
	start := time.Now()
	p.log.Debug("utp: hard-NAT punch: extra sockets open", "sockets", len(socks), "targets", targets)
	punch := func() {
		for _, s := range socks {
			for _, a := range targets {
				p.sendCtrl(s.route(a), kindPunch, u64(p.instance), true)
			}
		}
	}
	punch()
	refresh := time.NewTicker(hardNATRefresh)
	defer refresh.Stop()
	timeout := time.NewTimer(p.cfg.HardNATTimeout)
	defer timeout.Stop()
	// keep closes every extra socket but the one the path's route sends from, and returns that one.
	keep := func() *auxSocket {
		_, sock := p.onDirectRoute()
		if cur, ok := p.loadRoute().(*socketRoute); ok && sock == nil {
			sock = cur.s // the path is not established yet, but its route came this way
		}
		if sock != nil {
			if _, _, err := setSocketBuffers(sock.pc, p.cfg.SocketBuffer); err != nil {
				p.log.Debug("utp: hard-NAT punch: socket buffers", "err", err)
			}
			sock.enableBatch()
		}
		for _, s := range socks {
			if s != sock {
				s.close()
			}
		}
		socks = nil
		return sock
	}

	for {
		changed := p.RouteChanged()
		if direct, sock := p.onDirectRoute(); direct {
			p.log.Debug("utp: hard-NAT punch: direct route found", "extra_socket", sock != nil, "after", time.Since(start))
			return keep()
		}
		select {
		case <-p.done:
			return nil
		case <-changed:
		case <-refresh.C:
			punch()
		case <-timeout.C:
			p.log.Debug("utp: hard-NAT punch: no direct route in time", "timeout", p.cfg.HardNATTimeout)
			return keep()
		}
	}
}

// hardNATProbes is the easy side: it sends paced probes to ports of the peer's public address until a direct route
// carries the path, the budget is spent or Config.HardNATTimeout passes.
func (p *Path) hardNATProbes(peer peerNAT) {
	start := time.Now()
	deadline := start.Add(p.cfg.HardNATTimeout)
	order := probeOrder(peer.ports, p.cfg.HardNATProbes, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	p.log.Debug("utp: hard-NAT punch: probing", "peer", peer.ip, "probes", len(order), "observed_ports", peer.ports)
	select {
	case <-p.done:
		return
	case <-time.After(hardNATProbeDelay):
	}
	tick := time.NewTicker(hardNATTick)
	defer tick.Stop()
	perTick := max(int(hardNATTick/p.cfg.HardNATProbeInterval), 1)
	begin := time.Now()
	sent := 0
	for sent < len(order) {
		if direct, _ := p.onDirectRoute(); direct {
			p.log.Debug("utp: hard-NAT punch: direct route found", "probes", sent, "after", time.Since(start))
			return
		}
		now := time.Now()
		if now.After(deadline) {
			break
		}
		due := min(int(now.Sub(begin)/p.cfg.HardNATProbeInterval)+1, len(order), sent+hardNATBurst*perTick)
		for ; sent < due; sent++ {
			p.sendCtrl(newDirectRoute(p.t, netip.AddrPortFrom(peer.ip, order[sent])), kindPunch, u64(p.instance), true)
		}
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
	}
	p.log.Debug("utp: hard-NAT punch: probes spent", "probes", sent, "after", time.Since(start))
}

// probeOrder is the ports to probe, n at most: the ones that follow a sequence in the peer's observed ports first,
// then random ones above the privileged range, none twice.
func probeOrder(observed []uint16, n int, rng *rand.Rand) []uint16 {
	n = min(n, maxHardNATProbes)
	out := predictPorts(observed, min(n, maxPredictedPorts))
	seen := make(map[uint16]bool, len(out))
	for _, port := range out {
		seen[port] = true
	}
	rest := make([]uint16, 0, maxHardNATProbes)
	for port := 1024; port <= 65535; port++ {
		if !seen[uint16(port)] {
			rest = append(rest, uint16(port))
		}
	}
	for i := 0; len(out) < n && i < len(rest); i++ {
		j := i + rng.IntN(len(rest)-i)
		rest[i], rest[j] = rest[j], rest[i]
		out = append(out, rest[i])
	}
	return out
}

// onHardNATPeer reports whether addr is on the public address of a peer whose NAT maps per destination: where the
// easy side's probes find the peer, on a port none of its candidates names. Guarded by p.mu.
func (p *Path) onHardNATPeer(addr netip.AddrPort) bool {
	if a := p.hard.peerHard; a.IsValid() && a.Addr() == addr.Addr() {
		return true
	}
	peer := peerNATOf(p.cands)
	return peer.mapping == MappingPerDestination && peer.ip == addr.Addr()
}
