package utp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CandidateKind says how a candidate address was learnt.
type CandidateKind string

// Candidate kinds.
const (
	CandidateHost  CandidateKind = "host"  // a local interface address
	CandidateSrflx CandidateKind = "srflx" // server-reflexive: our address as a STUN server saw it
	CandidatePrflx CandidateKind = "prflx" // peer-reflexive: an address seen only by the peer (Path.Pair)
)

// Candidate is an address at which a peer may be reachable. Its JSON form matches signal.Candidate.
type Candidate struct {
	Kind CandidateKind  `json:"kind"`
	Addr netip.AddrPort `json:"addr"`
}

// Peer describes the remote side of a Connect.
type Peer struct {
	// Key is the 32-byte session key both peers share (from signal). It authenticates every punch, probe, control
	// packet and stream handshake; packets it does not authenticate are dropped.
	Key []byte
	// Candidates are the remote peer's addresses; all are punched at once.
	Candidates []Candidate
	// Dialer must be true on exactly one side: that side dials every uTP connection (the other asks it to when it
	// opens a stream), so the library's simultaneous open never happens.
	Dialer bool
}

// Path is one punched path to one peer, over which either side opens streams.
type Path struct {
	t        *Transport
	cfg      Config
	log      *slog.Logger
	dialer   bool
	keys     sessionKeys
	instance uint64
	cands    []Candidate
	recvMac  *macer // used only by the Transport's read goroutine
	cc       *controller
	ctx      context.Context // ends when the path does
	cancel   context.CancelFunc
	accept   chan *stream
	ready    chan struct{} // closed when Connect's condition holds
	done     chan struct{} // closed when the path ends
	kick     chan struct{} // a stream started writing: probe fast again

	sendMu  sync.Mutex
	sendMac *macer
	counter uint64

	lastRecv  atomic.Int64 // unix nanoseconds of the last authenticated packet from the peer
	lastWrite atomic.Int64 // unix nanoseconds of the last stream write

	mu            sync.Mutex
	locked        bool   // we had an authenticated reply to one of our punches
	peerInstance  uint64 // the peer instance that sent it; packets of any other instance are ignored
	window        replayWindow
	remote        netip.AddrPort
	remoteUDP     *net.UDPAddr
	seenAs        netip.AddrPort // our address as the peer saw our punch
	peerConfirmed bool
	nominated     bool // non-dialler: the dialler nominated remote
	peerDone      bool
	established   bool
	srtt          time.Duration
	sent          map[uint64]sentPacket
	lastProbe     time.Time
	streams       map[*stream]struct{}
	openWait      map[uint64]chan *stream // non-dialler: streams requested from the dialler
	openSeen      map[uint64]struct{}     // dialler: requests already served
	punchedBack   map[netip.AddrPort]bool // punch sources already punched back (learnPunchSource)
	err           error
}

type sentPacket struct {
	at    time.Time
	probe bool
}

// Connect punches a path to the peer: it sends authenticated punch packets to every candidate each
// Config.PunchInterval and answers the peer's (punching back at once, also to a peer-reflexive address no candidate
// named, as a symmetric NAT produces), until a pair works in both directions (each side has had a reply to
// its own punch and knows the other has too, and the dialler has nominated the address the uTP connections use).
// It fails with an error wrapping ErrPunchFailed when ctx ends (or after Config.ConnectTimeout without a deadline).
func (t *Transport) Connect(ctx context.Context, peer Peer) (*Path, error) {
	if len(peer.Key) != 32 {
		return nil, ErrBadKey
	}
	var cands []Candidate
	for _, c := range peer.Candidates {
		if !c.Addr.IsValid() || c.Addr.Port() == 0 {
			continue
		}
		c.Addr = netip.AddrPortFrom(c.Addr.Addr().Unmap(), c.Addr.Port())
		if (c.Addr.Addr().Is4() && !t.v4) || (c.Addr.Addr().Is6() && !t.v6) {
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
	p := t.newPath(peer, cands)
	if err := t.register(p); err != nil {
		return nil, err
	}
	go p.loop()
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

func (t *Transport) newPath(peer Peer, cands []Candidate) *Path {
	keys := deriveKeys(peer.Key)
	var id [8]byte
	rand.Read(id[:])
	ctx, cancel := context.WithCancel(context.Background())
	p := &Path{
		t:           t,
		cfg:         t.cfg,
		log:         t.log,
		dialer:      peer.Dialer,
		keys:        keys,
		instance:    binary.BigEndian.Uint64(id[:]),
		cands:       cands,
		recvMac:     newMacer(keys.control),
		sendMac:     newMacer(keys.control),
		cc:          newController(t.cfg.Congestion),
		ctx:         ctx,
		cancel:      cancel,
		accept:      make(chan *stream, t.cfg.AcceptBacklog),
		ready:       make(chan struct{}),
		done:        make(chan struct{}),
		kick:        make(chan struct{}, 1),
		sent:        make(map[uint64]sentPacket),
		streams:     make(map[*stream]struct{}),
		openWait:    make(map[uint64]chan *stream),
		openSeen:    make(map[uint64]struct{}),
		punchedBack: make(map[netip.AddrPort]bool),
	}
	p.lastRecv.Store(time.Now().UnixNano())
	return p
}

// RemoteAddr is the peer's address on this path (the winning remote candidate, as packets actually arrive from it).
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
	remote = Candidate{Kind: CandidatePrflx, Addr: p.remote}
	for _, c := range p.cands {
		if c.Addr == p.remote {
			remote.Kind = c.Kind
		}
	}
	return local, remote
}

// RTT is the smoothed round-trip time of our probes on this path (at first, that of the winning punch).
func (p *Path) RTT() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.srtt
}

// PacingRate is the congestion controller's current sending rate for the path, in bytes per second.
func (p *Path) PacingRate() float64 { return p.cc.rate() }

// Done is closed when the path ends (closed by either side, or dead); Err then says why.
func (p *Path) Done() <-chan struct{} { return p.done }

// Err is nil while the path lives, then an error wrapping ErrPathClosed, ErrPathDead or ErrTransportClosed.
func (p *Path) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close ends the path: it tells the peer (whose streams then fail with ErrPathClosed) and aborts every stream on it.
// Close streams first for a graceful end.
func (p *Path) Close() error {
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

// teardown ends what a path ended by setErr still holds: it tells the peer (bye), then fails every stream.
func (p *Path) teardown(err error, bye bool) {
	p.mu.Lock()
	streams := make([]*stream, 0, len(p.streams))
	for s := range p.streams {
		streams = append(streams, s)
	}
	remote, sayBye := p.remoteUDP, bye && p.locked && p.remoteUDP != nil
	p.mu.Unlock()
	if sayBye {
		// Lost byes only cost the peer a dead-path timeout.
		for range 3 {
			p.send(kindBye, nil, remote, false)
		}
	}
	p.t.unregister(p)
	p.cancel()
	close(p.done)
	for _, s := range streams {
		s.fail(err)
	}
	for {
		select {
		case s := <-p.accept:
			s.fail(err)
		default:
			return
		}
	}
}

// flags describes our state to the peer, for a packet sent to to.
func (p *Path) flags(to netip.AddrPort) byte {
	var f byte
	if p.dialer {
		f |= flagDialer
	}
	if p.locked {
		f |= flagConfirmed
		if p.dialer && to == p.remote {
			f |= flagNominated
		}
	}
	if p.established {
		f |= flagDone
	}
	return f
}

// send seals and sends one control packet. The send time of punches and probes is recorded before the packet leaves,
// so even an immediate answer finds it.
func (p *Path) send(kind ctrlKind, body []byte, to *net.UDPAddr, record bool) {
	ap, _ := addrPortOf(to)
	p.mu.Lock()
	flags := p.flags(ap)
	p.mu.Unlock()
	p.sendMu.Lock()
	p.counter++
	if record {
		p.mu.Lock()
		p.sent[p.counter] = sentPacket{at: time.Now(), probe: kind == kindProbe}
		if kind == kindProbe {
			p.lastProbe = time.Now()
		}
		p.mu.Unlock()
	}
	var buf [ctrlHeader + ctrlMaxBody + macSize]byte
	b := p.sendMac.appendCtrl(buf[:0], ctrlPacket{kind: kind, flags: flags, instance: p.instance, counter: p.counter, body: body})
	p.sendMu.Unlock()
	p.t.writeTo(b, to)
}

// nextCounter reserves a counter value (for a stream handshake, which shares the control packets' replay window).
func (p *Path) nextCounter() uint64 {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	p.counter++
	return p.counter
}

// handleControl runs on the Transport's read goroutine for every packet this path's key authenticates.
func (p *Path) handleControl(c ctrlPacket, from netip.AddrPort) {
	fromUDP := net.UDPAddrFromAddrPort(from)
	if c.kind == kindPunch {
		// Answer every authenticated punch, even before we trust the sender's instance: the reply only proves we
		// hold the key, and the puncher needs it to confirm the pair.
		p.send(kindPunchReply, punchReplyBody(c.instance, c.counter, from), fromUDP, false)
		if p.learnPunchSource(from) {
			p.send(kindPunch, nil, fromUDP, true)
		}
	}
	if peerDialer := c.flags&flagDialer != 0; peerDialer == p.dialer {
		// Checked on the first authenticated packet, punch or reply, so both sides see it even when one gives up
		// before the other has had a reply.
		go p.shutdown(ErrRoles, true)
		return
	}
	now := time.Now()
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return
	}
	var rtt time.Duration
	if c.kind == kindPunchReply || c.kind == kindProbeEcho {
		inst, ctr := parseEcho(c.body)
		sent, ok := p.sent[ctr]
		if inst != p.instance || !ok {
			p.mu.Unlock() // an answer to an earlier session, or to a probe already counted lost
			return
		}
		delete(p.sent, ctr)
		rtt = now.Sub(sent.at)
		if !p.locked {
			// The first fresh reply fixes the peer's instance and, for now, its address.
			p.locked, p.peerInstance = true, c.instance
			p.setRemote(from)
			p.seenAs = parseObserved(c.body)
			p.srtt = rtt
			p.log.Debug("utp: punch answered", "from", from, "rtt", rtt)
		}
	}
	if !p.locked || c.instance != p.peerInstance || !p.window.accept(c.counter) {
		p.mu.Unlock() // not yet trusted, another instance, or a replay
		return
	}
	p.lastRecv.Store(now.UnixNano())
	if c.kind == kindProbeEcho {
		p.srtt = (7*p.srtt + rtt) / 8
	}
	if c.flags&flagConfirmed != 0 {
		p.peerConfirmed = true
	}
	if c.flags&flagDone != 0 {
		p.peerDone = true
	}
	if c.flags&flagNominated != 0 && !p.dialer && !p.nominated {
		p.nominated = true
		p.setRemote(from)
	}
	becameReady := !p.established && p.peerConfirmed && (p.dialer || p.nominated)
	if becameReady {
		p.established = true
	}
	remote := p.remote
	p.mu.Unlock()

	if becameReady {
		if err := p.t.establish(p, remote); err != nil {
			p.shutdown(fmt.Errorf("%w: %w", ErrPunchFailed, err), true)
			return
		}
		if p.dialer {
			// Nominate the pair now, before Connect returns: the acceptor lets our uTP packets through only once it
			// has had a nomination, and the packet that made us ready may be a punch reply that needs no answer.
			// Without this the nomination could follow our first SYN (in our answer to the acceptor's next punch, or
			// our next probe), the acceptor dropped the SYN, and the first stream waited ~1 s for the library to
			// resend it. Sent on the same address pair as the SYN, so it arrives first.
			p.send(kindProbe, nil, net.UDPAddrFromAddrPort(remote), true)
		}
		close(p.ready)
	}
	switch c.kind {
	case kindProbe:
		p.send(kindProbeEcho, echoBody(c.instance, c.counter), fromUDP, false)
	case kindProbeEcho:
		p.cc.onRTTSample(rtt)
	case kindOpenRequest:
		if p.dialer {
			p.serveOpenRequest(binary.BigEndian.Uint64(c.body))
		}
	case kindBye:
		// The error is set here, on the read goroutine, so a stream whose uTP connection ends right behind the bye
		// reports ErrPathClosed; the teardown closes uTP connections and so must not run under the library's reader.
		if err := fmt.Errorf("%w by the peer", ErrPathClosed); p.setErr(err) {
			go p.teardown(err, false)
		}
	}
}

// learnPunchSource reports whether to punch back at once to the source of an authenticated punch: once per address
// while the path is not established. A source no candidate names becomes a peer-reflexive candidate (RFC 8445
// 7.3.1.3): a symmetric NAT gives the peer a new port towards us, and without punching that port the peer's NAT
// drops our punches, so the path is never confirmed. Punching back at once also spares a punch interval when the
// peer's first punches arrived before this path existed.
func (p *Path) learnPunchSource(from netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil || p.established || p.punchedBack[from] {
		return false
	}
	p.punchedBack[from] = true
	if !slices.ContainsFunc(p.cands, func(c Candidate) bool { return c.Addr == from }) {
		p.cands = append(p.cands, Candidate{Kind: CandidatePrflx, Addr: from})
		p.log.Debug("utp: peer-reflexive candidate", "addr", from)
	}
	return true
}

func (p *Path) setRemote(a netip.AddrPort) {
	p.remote = a
	p.remoteUDP = net.UDPAddrFromAddrPort(a)
}

// loop punches until the path is ready, then probes: fast while streams write or the peer is still connecting,
// at the keepalive interval when idle. It also declares the path dead and counts lost probes.
func (p *Path) loop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-p.kick:
		case <-timer.C:
		}
		now := time.Now()
		p.mu.Lock()
		established, locked, remote, peerDone := p.established, p.locked, p.remoteUDP, p.peerDone
		cands := p.cands // learnPunchSource only appends
		lossAfter := max(4*p.srtt, 200*time.Millisecond)
		lost := 0
		for ctr, s := range p.sent {
			if now.Sub(s.at) < lossAfter {
				continue
			}
			if s.probe {
				lost++
			} else if now.Sub(s.at) < 10*time.Second {
				continue // punch replies may still lock the path
			}
			delete(p.sent, ctr)
		}
		sinceProbe := now.Sub(p.lastProbe)
		p.mu.Unlock()
		for range lost {
			p.cc.onProbeLost()
		}

		if !established {
			if locked {
				p.send(kindPunch, nil, remote, true)
			} else {
				for _, c := range cands {
					p.send(kindPunch, nil, net.UDPAddrFromAddrPort(c.Addr), true)
				}
			}
			timer.Reset(p.cfg.PunchInterval)
			continue
		}
		if silent := now.Sub(time.Unix(0, p.lastRecv.Load())); silent > p.cfg.DeadPathTimeout {
			p.shutdown(fmt.Errorf("%w: nothing from %v for %v", ErrPathDead, remote, silent.Round(time.Millisecond)), false)
			return
		}
		interval := p.cfg.KeepaliveInterval
		if !peerDone || now.Sub(time.Unix(0, p.lastWrite.Load())) < time.Second {
			interval = p.cfg.ProbeInterval
		}
		if sinceProbe >= interval {
			p.send(kindProbe, nil, remote, true)
			sinceProbe = 0
		}
		timer.Reset(min(interval-sinceProbe, p.cfg.DeadPathTimeout/8))
	}
}

// noteWrite records stream activity; the first write after an idle second wakes the loop to probe fast again.
func (p *Path) noteWrite() {
	now := time.Now().UnixNano()
	if prev := p.lastWrite.Swap(now); now-prev > int64(time.Second) {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}
