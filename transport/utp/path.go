package utp

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp/internal/engine"
)

// CandidateKind says how a candidate address was learnt.
type CandidateKind string

// Candidate kinds.
const (
	CandidateHost  CandidateKind = "host"  // a local interface address
	CandidateSrflx CandidateKind = "srflx" // server-reflexive: our address as a STUN server saw it
	CandidatePrflx CandidateKind = "prflx" // peer-reflexive: an address seen only by the peer (Path.Pair)
	CandidateRelay CandidateKind = "relay" // a TURN allocation's relayed address (Relay.Candidate)
)

// Candidate is an address at which a peer may be reachable. Its JSON form matches signal.Candidate.
type Candidate struct {
	Kind CandidateKind  `json:"kind"`
	Addr netip.AddrPort `json:"addr"`
	// Mapping, on a server-reflexive candidate, is how the NAT that made it maps (NATReport.Mapping): a peer behind
	// a NAT that maps per destination offers one such candidate per STUN address it asked, in the order asked.
	Mapping NATMapping `json:"mapping,omitempty"`
}

// Peer describes the remote side of a Connect.
type Peer struct {
	// Key is the 32-byte session secret both peers share (from the meeting's PAKE). Per-direction keys derived from
	// it seal every datagram of the path; a datagram they do not open is dropped. Use a key for one Connect only:
	// the path keeps only what it derives, for as long as it lives.
	Key []byte
	// Candidates are the remote peer's addresses; all are punched at once.
	Candidates []Candidate
	// Dialer must be true on exactly one side. It names the two directions' keys; by convention (rendezvous keeps
	// it) the dialler opens the first stream and the other side accepts it. After that either side opens streams.
	Dialer bool
	// Cipher seals the path's datagrams; both sides must name the same one (the meeting negotiates it). The zero
	// value means ChaCha20Poly1305; one this package does not implement fails Connect with ErrUnknownCipher.
	Cipher Cipher
}

// Path is one punched, sealed path to one peer, over which either side opens streams. A Transport runs any number
// of paths at once, one per peer (session key).
//
// Lock order: a stream's lock (held by the engine while it writes datagrams), then Path.mu; rmu (the receive side's
// replay window) is taken alone. Path.mu is never held while calling into the engine.
type Path struct {
	t        *Transport
	cfg      Config
	log      *slog.Logger
	dialer   bool
	keys     pathKeys
	instance uint64
	eng      *engine.Endpoint // the uTP engine: the path's streams
	ready    chan struct{}    // closed when Connect's condition holds
	done     chan struct{}    // closed when the path ends
	kick     chan struct{}    // the route changed: probe it at once

	counter  atomic.Uint64 // the last sealed counter sent
	lastRecv atomic.Int64  // unix nanoseconds of the last authenticated datagram from the peer

	rmu    sync.Mutex
	window replayWindow

	route atomic.Pointer[routeRef] // read without a lock on every datagram; written by setRoute under mu
	sel   routeSel                 // route selection (route_select.go): guarded by mu but for curRecv

	mu            sync.Mutex
	cands         []Candidate
	locked        bool           // we had an authenticated reply to one of our punches
	remote        netip.AddrPort // the route's peerAddr()
	heard         map[routeID]route
	seenAs        netip.AddrPort // our address as the peer saw our punch
	peerConfirmed bool
	nominated     bool // non-dialler: the dialler nominated remote
	peerDone      bool
	established   bool
	srtt          time.Duration
	sent          map[uint64]sentPacket
	lastProbe     time.Time
	punchedBack   map[routeID]bool // routes of punches already punched back (learnPunchSource)
	hard          hardNATState
	err           error
}

// RemoteAddr is the peer's address on this path: where its datagrams come from on the current route.
func (p *Path) RemoteAddr() netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remote
}

// Pair reports the candidate pair that won: our address as the peer saw it (host when it is one of our interface
// addresses, else srflx when the peer reached us through a NAT) and the peer's address (its kind from the peer's
// candidate list, prflx when it was not in it).
func (p *Path) Pair() (local, remote Candidate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	local = Candidate{Kind: CandidateSrflx, Addr: p.seenAs}
	for _, h := range p.t.HostCandidates() {
		if h.Addr == p.seenAs {
			local.Kind = CandidateHost
		}
	}
	for _, r := range p.t.readyRelays() {
		if r.addr == p.seenAs {
			local.Kind = CandidateRelay
		}
	}
	remote = Candidate{Kind: CandidatePrflx, Addr: p.remote}
	for _, c := range p.cands {
		if c.Addr == p.remote {
			remote.Kind = c.Kind
		}
	}
	return local, remote
}

// Cipher is the AEAD that seals the path's datagrams.
func (p *Path) Cipher() Cipher { return p.keys.cipher }

// RTT is the smoothed round-trip time of our probes on this path (at first, that of the winning punch).
func (p *Path) RTT() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.srtt
}

// Done is closed when the path ends (closed by either side, or dead); Err then says why.
func (p *Path) Done() <-chan struct{} { return p.done }

// Err is nil while the path lives, then an error wrapping ErrPathClosed, ErrPathDead or ErrTransportClosed.
func (p *Path) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close ends the path: it waits (up to Config.CloseTimeout) until streams already closed have delivered what was
// written to them, then tells the peer (whose streams then fail with ErrPathClosed) and aborts every stream left.
// Close streams first for a graceful end.
func (p *Path) Close() error {
	if p.Err() == nil {
		p.drain()
	}
	p.shutdown(ErrPathClosed, true)
	return nil
}

// shutdown ends the path once, with err.
func (p *Path) shutdown(err error, bye bool) {
	if p.setErr(err) {
		p.teardown(err, bye)
	}
}

// setErr records why the path ended; the first call wins. From then on Err reports it and no stream is added.
func (p *Path) setErr(err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return false
	}
	p.err = err
	return true
}

// teardown ends what a path ended by setErr still holds: it tells the peer (bye), fails every stream, stops the
// engine and forgets the keys' IDs at the Transport.
func (p *Path) teardown(err error, bye bool) {
	p.mu.Lock()
	r := p.loadRoute()
	sayBye := bye && p.locked && r != nil
	p.mu.Unlock()
	if sayBye {
		// Lost byes only cost the peer a dead-path timeout.
		for range 3 {
			p.sendCtrl(r, kindBye, nil, false)
		}
	}
	p.t.unregister(p)
	close(p.done)
	p.eng.Fail(err)
}

// receive handles one sealed datagram for this path that arrived on r: it opens it in place, checks the replay
// window, and hands engine datagrams to the engine (or to rx, when not nil, to deliver with the rest of their read)
// and control packets to handleControl. It runs on the goroutine reading r. Nothing reaches the engine or the control logic unless it opened and was fresh.
func (p *Path) receive(b []byte, r route, rx *rxBatch) {
	counter, plain, ok := p.keys.open(p.keys.recv, b)
	if !ok || len(plain) == 0 {
		p.t.stats.unopened.Add(1)
		return
	}
	p.rmu.Lock()
	fresh, newest := p.window.accept(counter)
	p.rmu.Unlock()
	if !fresh {
		p.t.stats.replayed.Add(1)
		return
	}
	now := time.Now()
	p.lastRecv.Store(now.UnixNano())
	kind := ctrlKind(plain[0])
	p.heardOn(r, newest, plain, now)
	if kind == kindDatagram {
		if rx != nil {
			rx.add(p, plain[1:])
			return
		}
		p.eng.DeliverDatagram(plain[1:])
		return
	}
	rx.flush() // the datagrams before a control packet are handled before it
	c, err := parseCtrl(plain)
	if err != nil {
		p.log.Debug("utp: malformed control packet from the peer", "kind", kind, "len", len(plain))
		return
	}
	p.handleControl(c, counter, r, now)
}

// receiveMirror handles a datagram sent to the path ID our peer receives on: only a peer of the same role as ours
// (both or neither the dialler) sends there, and its punches open with our own sending key. A punch of another
// instance than ours (ours would be a reflection) proves the misconfiguration, which both sides then report.
func (p *Path) receiveMirror(b []byte, r route) {
	_, plain, ok := p.keys.open(p.keys.send, b)
	if !ok {
		p.t.stats.unopened.Add(1)
		return
	}
	c, err := parseCtrl(plain)
	if err != nil || c.kind != kindPunch || binary.BigEndian.Uint64(c.body) == p.instance {
		return
	}
	p.mu.Lock()
	established := p.established
	p.mu.Unlock()
	if !established {
		// One punch back, so the peer sees the misconfiguration too even if it punched before we listened.
		p.sendCtrl(r, kindPunch, u64(p.instance), false)
		go p.shutdown(ErrRoles, false)
	}
}

// sendCtrl seals and sends one control packet on r. The send time of punches and probes (record) is noted before
// the packet leaves, so even an immediate answer finds it.
func (p *Path) sendCtrl(r route, kind ctrlKind, body []byte, record bool) {
	p.mu.Lock()
	flags := p.flags(r)
	p.mu.Unlock()
	var buf [1 + ctrlMaxBody]byte
	p.sendSealed(r, kind, append(append(buf[:0], flags), body...), record)
}

// sendSealed seals kind || payload under the next counter and sends it on r (see sendCtrl for record). For control
// packets payload is the flags byte and the body.
func (p *Path) sendSealed(r route, kind ctrlKind, payload []byte, record bool) {
	counter := p.counter.Add(1)
	if record {
		now := time.Now()
		p.mu.Lock()
		probe := kind == kindProbe && payload[0]&flagBackup == 0 // a probe of the current route
		p.sent[counter] = sentPacket{at: now, probe: probe}
		if probe {
			p.lastProbe = now
		}
		p.mu.Unlock()
	}
	n := sealedHeader + 1 + len(payload)
	var bp *[]byte
	var buf []byte
	if n+sealedOverhead-sealedHeader <= maxSealed { // room for the tag
		bp = sealBufs.Get().(*[]byte)
		buf = (*bp)[:n]
	} else {
		buf = make([]byte, n, n+sealedOverhead)
	}
	buf[sealedHeader] = byte(kind)
	copy(buf[sealedHeader+1:], payload)
	err := r.send(p.keys.seal(buf, counter))
	if bp != nil {
		sealBufs.Put(bp)
	}
	if err != nil && !p.t.isClosed() {
		p.log.Debug("utp: send", "route", r.id(), "err", err)
		p.routeDead(r, fmt.Errorf("%w: %w", errRouteDead, err))
	}
}

type sentPacket struct {
	at    time.Time
	probe bool
}

// routeFor is the route a datagram from addr (the way via, or straight over the socket when via is nil) came on:
// the current route when it is that one (no allocation on the hot path), else a new route.
func (p *Path) routeFor(addr netip.AddrPort, via routeVia) route {
	if r := p.loadRoute(); r != nil && r.id() == routeIDOf(addr, via) {
		return r
	}
	return newRoute(p.t, addr, via)
}
