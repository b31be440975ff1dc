package utp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/engine"
)

// Connect punches a path to the peer: it sends sealed punches to every candidate each Config.PunchInterval and
// answers the peer's (punching back at once, also to a peer-reflexive address no candidate named, as a symmetric
// NAT produces), until a pair works in both directions (each side has had a reply to its own punch and knows the
// other has too, and the dialler has nominated the address its datagrams use). It fails with an error wrapping
// ErrPunchFailed when ctx ends (or after Config.ConnectTimeout without a deadline); a Peer.Cipher this package does
// not implement fails it at once with ErrUnknownCipher. When one side's NAT maps per destination and the other's
// does not (Candidate.Mapping, Transport.DiscoverNAT), the path also punches with many ports at once
// (Config.HardNATSockets), during Connect and after it returns on a relay. A Transport runs any number of paths at
// once, each with its own key.
func (t *Transport) Connect(ctx context.Context, peer Peer) (*Path, error) {
	if len(peer.Key) != 32 {
		return nil, ErrBadKey
	}
	if err := peer.Cipher.orDefault().Check(); err != nil {
		return nil, err
	}
	var cands []Candidate
	for _, c := range peer.Candidates {
		if !c.Addr.IsValid() {
			continue
		}
		c.Addr = netip.AddrPortFrom(c.Addr.Addr().Unmap(), c.Addr.Port())
		if !t.canReach(c.Addr) {
			continue // unreachable from this socket (e.g. IPv6 on an IPv4 socket)
		}
		if !slices.ContainsFunc(cands, func(o Candidate) bool { return o.Addr == c.Addr }) {
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: the peer has no candidate this %s socket can reach", ErrPunchFailed, t.network())
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.ConnectTimeout)
		defer cancel()
	}
	p, err := t.newPath(peer, cands)
	if err != nil {
		return nil, err
	}
	if err := t.register(p); err != nil {
		p.eng.Close()
		return nil, err
	}
	go p.loop()
	p.startHardNAT()
	select {
	case <-p.ready:
		p.mu.Lock()
		p.log.Debug("utp: path ready", "remote", p.remote, "seen_as", p.seenAs, "rtt", p.srtt)
		p.mu.Unlock()
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%w: %w", ErrPunchFailed, p.Err())
	case <-ctx.Done():
		p.mu.Lock()
		state := "no candidate answered"
		if p.locked {
			state = fmt.Sprintf("%v answered but the peer did not confirm", p.remote)
		}
		p.mu.Unlock()
		p.shutdown(ErrPunchFailed, true)
		return nil, fmt.Errorf("%w: %s (%d candidates): %w", ErrPunchFailed, state, len(cands), ctx.Err())
	}
}

// canReach reports whether a peer's address a (unmapped) is one this Transport's socket can send to.
func (t *Transport) canReach(a netip.AddrPort) bool {
	ip := a.Addr()
	if !a.IsValid() || a.Port() == 0 || ip.IsUnspecified() || ip.IsMulticast() {
		return false
	}
	return (ip.Is4() && t.v4) || (ip.Is6() && t.v6)
}

func (t *Transport) newPath(peer Peer, cands []Candidate) (*Path, error) {
	keys, err := derivePathKeys(peer.Key, peer.Dialer, peer.Cipher.orDefault(), t.cfg.noSeal)
	if err != nil {
		return nil, fmt.Errorf("utp: deriving path keys: %w", err)
	}
	var id [8]byte
	rand.Read(id[:])
	p := &Path{
		t:           t,
		cfg:         t.cfg,
		log:         t.log,
		dialer:      peer.Dialer,
		keys:        keys,
		instance:    binary.BigEndian.Uint64(id[:]),
		ready:       make(chan struct{}),
		done:        make(chan struct{}),
		kick:        make(chan struct{}, 1),
		cands:       cands,
		heard:       make(map[routeID]route),
		sent:        make(map[uint64]sentPacket),
		punchedBack: make(map[routeID]bool),
	}
	// Counters start at the clock, so a second Connect with the same key never reuses a nonce and an earlier
	// session's datagrams fall behind the replay window.
	p.counter.Store(uint64(time.Now().UnixNano()))
	p.lastRecv.Store(time.Now().UnixNano())
	p.eng = engine.NewEndpoint(p.link(), p.engineConfig())
	return p, nil
}

// flags describes our state to the peer, for a packet sent on r. Called with p.mu held.
func (p *Path) flags(r route) byte {
	f := byte(flagRelayMoves)
	if p.locked {
		f |= flagConfirmed
		if cur := p.loadRoute(); p.dialer && cur != nil && r.id() == cur.id() {
			f |= flagNominated
		}
	}
	if p.established {
		f |= flagDone
		if cur := p.loadRoute(); cur != nil && r.id() != cur.id() {
			f |= flagBackup
		}
	}
	return f
}

// handleControl runs on the goroutine reading r for every fresh control packet of this path.
func (p *Path) handleControl(c ctrlPacket, counter uint64, r route, now time.Time) {
	switch c.kind {
	case kindRelayMove:
		p.relayMoved(c, r)
		return
	case kindRelayMoveAck:
		p.relayMoveAcked(c)
		return
	}
	if c.kind == kindPunch || c.kind == kindPunchReply {
		p.learnMapping(r, c)
	}
	if c.kind == kindPunch {
		// Answer every fresh punch (a replayed one never gets here): the reply proves we hold the key, and the
		// puncher needs it to confirm the pair.
		p.sendCtrl(r, kindPunchReply, punchReplyBody(counter, r.peerAddr()), false)
		if p.learnPunchSource(r) {
			p.sendCtrl(r, kindPunch, u64(p.instance), true)
		}
	}
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return
	}
	if c.flags&flagRelayMoves != 0 {
		p.sel.peerMoves = true
	}
	var rtt time.Duration
	var sent sentPacket
	if c.kind == kindPunchReply || c.kind == kindProbeEcho {
		ctr := parseEcho(c.body)
		var ok bool
		sent, ok = p.sent[ctr]
		if !ok {
			p.mu.Unlock() // a late answer, to a probe already counted lost
			return
		}
		delete(p.sent, ctr)
		rtt = now.Sub(sent.at)
		switch {
		case !p.locked:
			// The first reply fixes, for now, the peer's address.
			p.locked = true
			p.setRoute(r)
			p.seenAs = parseObserved(c.body)
			p.srtt = rtt
			p.log.Debug("utp: punch answered", "route", r.id(), "rtt", rtt)
		case c.kind == kindPunchReply:
			p.punchAnswered(r, parseObserved(c.body), rtt)
		case !sent.probe:
			p.backupAnswered(r, rtt)
		}
	}
	if !p.locked {
		p.mu.Unlock() // the peer's state matters once we know a route to it
		return
	}
	curProbe := c.kind == kindProbeEcho && sent.probe
	if curProbe {
		p.srtt = (7*p.srtt + rtt) / 8
		p.sel.lostInRow = 0
	}
	if c.flags&flagConfirmed != 0 {
		p.peerConfirmed = true
	}
	if c.flags&flagDone != 0 {
		p.peerDone = true
	}
	if c.flags&flagNominated != 0 && !p.dialer && !p.nominated {
		p.nominated = true
		p.setRoute(r)
	}
	becameReady := !p.established && p.peerConfirmed && (p.dialer || p.nominated)
	if becameReady {
		p.established = true
	}
	cur := p.loadRoute()
	p.mu.Unlock()

	if becameReady {
		if p.dialer {
			// Nominate the pair now, before Connect returns: the acceptor uses the nominated route, and the packet
			// that made us ready may be a punch reply that needs no answer. Sent on the route of the first SYN, so
			// it arrives first.
			p.sendCtrl(cur, kindProbe, nil, true)
		}
		close(p.ready)
	}
	switch c.kind {
	case kindProbe:
		p.sendCtrl(r, kindProbeEcho, u64(counter), false)
	case kindBye:
		// The error is set here, before the peer's streams can end behind the bye, so they report ErrPathClosed.
		if err := fmt.Errorf("%w by the peer", ErrPathClosed); p.setErr(err) {
			go p.teardown(err, false)
		}
	}
}

// learnPunchSource reports whether to punch back at once to the source of an authenticated punch: once per route
// while the path is not established. A source no candidate names becomes a peer-reflexive candidate (RFC 8445
// 7.3.1.3): a symmetric NAT gives the peer a new port towards us, and without punching that port the peer's NAT
// drops our punches, so the path is never confirmed. Punching back at once also spares a punch interval when the
// peer's first punches arrived before this path existed.
func (p *Path) learnPunchSource(r route) bool {
	from := r.peerAddr()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil || p.established || p.punchedBack[r.id()] {
		return false
	}
	p.punchedBack[r.id()] = true
	if !slices.ContainsFunc(p.cands, func(c Candidate) bool { return c.Addr == from }) {
		p.cands = append(p.cands, Candidate{Kind: CandidatePrflx, Addr: from})
		p.log.Debug("utp: peer-reflexive candidate", "addr", from)
	}
	return true
}

// punch sends one round of punches to every candidate, straight and (but for host candidates: LAN addresses a relay
// on the internet neither reaches nor may send to) through each of our relays: every pair that works is a route,
// and the best one that answered carries the path (punchAnswered).
func (p *Path) punch() {
	p.mu.Lock()
	cands := p.cands // learnPunchSource only appends
	p.mu.Unlock()
	relays := p.t.readyRelays()
	for _, c := range cands {
		p.sendCtrl(newDirectRoute(p.t, c.Addr), kindPunch, u64(p.instance), true)
		if c.Kind == CandidateHost {
			continue
		}
		for _, r := range relays {
			p.sendCtrl(r.route(c.Addr), kindPunch, u64(p.instance), true)
		}
	}
}
