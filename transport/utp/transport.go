package utp

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// Transport owns one UDP socket and everything that shares it: the STUN client and the paths to any number of
// peers. One goroutine at a time reads the socket (a background goroutine, or a stream's Read waiting for data: see
// readRole) and sorts each datagram by its first bytes: STUN to the STUN client, sealed datagrams (first byte 0xD8)
// to the path whose receiver ID they carry, which opens them; anything else is dropped and counted.
//
// Lock order: Transport.mu, then Path.mu; a path never holds its lock while calling into the Transport.
type Transport struct {
	pc            net.PacketConn
	cfg           Config
	log           *slog.Logger
	local         *net.UDPAddr
	rbuf, wbuf    int
	maxUDPPayload int                                   // largest UDP payload the local MTU allows
	sendRaw       func(b []byte, to *net.UDPAddr) error // non-blocking send on a plain UDP socket, or nil
	v4, v6        bool                                  // address families the socket can reach
	done          chan struct{}
	wg            sync.WaitGroup
	stats         counters
	role          *readRole // who reads the socket

	sendBatchRaw func(bufs [][]byte, to *net.UDPAddr) (int, error) // batched non-blocking send, or nil

	byID   atomic.Pointer[map[uint64]pathSlot] // by the path IDs of both directions; copied on write under mu
	relays atomic.Pointer[[]*Relay]            // TURN allocations; copied on write under mu
	nat    atomic.Pointer[NATReport]           // what DiscoverNAT found last

	mu       sync.Mutex
	paths    map[*Path]struct{}          // connecting and established
	stunWait map[[12]byte]chan stunReply // pending STUN transactions
	closed   bool
}

// pathSlot is a path found by a path ID: the ID it receives on, or (mirror) the ID its peer receives on, which only
// a peer with the same role as ours would send to.
type pathSlot struct {
	p      *Path
	mirror bool
}

type counters struct {
	stranger, unopened, replayed, sendDrops atomic.Uint64
}

// Listen binds a UDP socket (network "udp", "udp4" or "udp6"; e.g. Listen("udp4", ":0", Config{})) and returns a
// Transport on it.
func Listen(network, addr string, cfg Config) (*Transport, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("utp: listen: network %q is not udp, udp4 or udp6", network)
	}
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		return nil, fmt.Errorf("utp: listen: %w", err)
	}
	t, err := NewTransport(pc, cfg)
	if err != nil {
		pc.Close()
		return nil, err
	}
	return t, nil
}

// NewTransport returns a Transport on pc, which it owns from now on (Close closes it). pc is normally a
// *net.UDPConn; it may be a wrapper (e.g. one that impairs traffic in tests) whose LocalAddr is a *net.UDPAddr.
// The Transport reads pc from one goroutine at a time; on a *net.UDPConn it owns the read deadline too (it ends a
// read in progress with one when another goroutine should read). pc.WriteTo is called from several goroutines, some
// holding a stream's lock, so it must not block for long.
func NewTransport(pc net.PacketConn, cfg Config) (*Transport, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	local, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, fmt.Errorf("utp: local address %v is not a UDP address", pc.LocalAddr())
	}
	t := &Transport{
		pc:       pc,
		cfg:      cfg,
		log:      cfg.Logger,
		local:    local,
		paths:    make(map[*Path]struct{}),
		stunWait: make(map[[12]byte]chan stunReply),
		done:     make(chan struct{}),
	}
	var err error
	t.rbuf, t.wbuf, err = setSocketBuffers(pc, cfg.SocketBuffer)
	if err != nil {
		return nil, fmt.Errorf("utp: socket buffers: %w", err)
	}
	if granted := t.rbuf / kernelBufferFactor; t.rbuf != 0 && granted < cfg.SocketBuffer {
		t.log.Warn("utp: kernel granted a smaller socket buffer than requested; raise net.core.rmem_max/wmem_max",
			"requested", cfg.SocketBuffer, "read", t.rbuf, "write", t.wbuf)
	}
	t.sendRaw = newNonblockingSender(pc)
	t.sendBatchRaw = newBatchSender(pc)
	t.byID.Store(&map[uint64]pathSlot{})
	t.v4, t.v6 = families(pc, local)
	t.maxUDPPayload = localMTU(local) - udpOverhead(t.v6)
	t.role = newReadRole(t)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.role.background()
	}()
	return t, nil
}

// LocalAddr is the address the UDP socket is bound to.
func (t *Transport) LocalAddr() *net.UDPAddr { return t.local }

// BufferSizes reports the socket buffer sizes the kernel granted (as getsockopt reports them: Linux shows double the
// usable size), or zeros when the PacketConn is not a socket.
func (t *Transport) BufferSizes() (read, write int) { return t.rbuf, t.wbuf }

// HostCandidates lists the local interface addresses (of the socket's family) with the bound port: all interfaces
// when bound to an unspecified address, else just the bound one. Loopback addresses come last.
func (t *Transport) HostCandidates() []Candidate {
	port := uint16(t.local.Port)
	bound, _ := netip.AddrFromSlice(t.local.IP)
	bound = bound.Unmap()
	if bound.IsValid() && !bound.IsUnspecified() {
		return []Candidate{{Kind: CandidateHost, Addr: netip.AddrPortFrom(bound, port)}}
	}
	want4, want6 := t.v4, t.v6
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.log.Warn("utp: listing interface addresses", "err", err)
		return nil
	}
	var out, loop []Candidate
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if (ip.Is4() && !want4) || (ip.Is6() && !want6) || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		c := Candidate{Kind: CandidateHost, Addr: netip.AddrPortFrom(ip, port)}
		if ip.IsLoopback() {
			loop = append(loop, c)
		} else {
			out = append(out, c)
		}
	}
	return append(out, loop...)
}

// Close closes every path (telling the peers), every stream and the socket.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	paths := make([]*Path, 0, len(t.paths))
	for p := range t.paths {
		paths = append(paths, p)
	}
	t.mu.Unlock()
	for _, p := range paths {
		p.shutdown(ErrTransportClosed, true)
	}
	for _, r := range t.loadRelays() {
		r.Close()
	}
	close(t.done)
	err := t.pc.Close()
	t.wg.Wait()
	return err
}

func (t *Transport) isClosed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// families says which address families the socket reaches: from the kernel when pc is (or exposes) a socket, else
// from its bound address.
func families(pc net.PacketConn, local *net.UDPAddr) (v4, v6 bool) {
	if sc, ok := pc.(syscall.Conn); ok {
		if v4, v6, err := socketFamilies(sc); err == nil {
			return v4, v6
		}
	}
	if local.IP.To4() != nil {
		return true, false
	}
	return true, true
}

// network is the net package's name for what the socket reaches ("udp4", "udp6" or "udp").
func (t *Transport) network() string {
	switch {
	case t.v4 && !t.v6:
		return "udp4"
	case t.v6 && !t.v4:
		return "udp6"
	}
	return "udp"
}

// dispatch sorts one datagram by its first bytes: STUN, a sealed datagram for one of our paths, or a stranger's
// (dropped and counted). b may be overwritten (sealed datagrams are opened in place), and uTP datagrams may wait in
// rx (when not nil) until it is flushed.
func (t *Transport) dispatch(b []byte, from netip.AddrPort, rx *rxBatch) {
	if isSTUN(b) {
		if !t.handleSTUN(b, from) {
			t.relayInbound(b, from)
		}
		return
	}
	if isChannelData(b) && t.relayInbound(b, from) {
		return
	}
	t.dispatchSealed(b, from, nil, rx)
}

// dispatchSealed hands a sealed datagram from the peer address from (the way via: through one of our relays or on
// an extra socket; straight over the socket when via is nil) to its path; a uTP datagram may wait in rx (see
// dispatch).
func (t *Transport) dispatchSealed(b []byte, from netip.AddrPort, via routeVia, rx *rxBatch) {
	id, ok := sealedID(b)
	if !ok {
		t.stats.stranger.Add(1)
		return
	}
	slot, ok := (*t.byID.Load())[id]
	switch {
	case !ok:
		t.stats.stranger.Add(1)
	case slot.mirror:
		slot.p.receiveMirror(b, newRoute(t, from, via))
	default:
		slot.p.receive(b, slot.p.routeFor(from, via), rx)
	}
}

// register makes p known to the demultiplexer under both of its path IDs.
func (t *Transport) register(p *Path) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrTransportClosed
	}
	old := *t.byID.Load()
	if _, dup := old[p.keys.recvID]; dup {
		return errors.New("utp: a path with this session key is already open on this transport")
	}
	if _, dup := old[p.keys.sendID]; dup {
		return errors.New("utp: a path with this session key is already open on this transport")
	}
	ids := maps.Clone(old)
	ids[p.keys.recvID] = pathSlot{p: p}
	ids[p.keys.sendID] = pathSlot{p: p, mirror: true}
	t.byID.Store(&ids)
	t.paths[p] = struct{}{}
	return nil
}

func (t *Transport) unregister(p *Path) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.paths, p)
	ids := maps.Clone(*t.byID.Load())
	for _, id := range []uint64{p.keys.recvID, p.keys.sendID} {
		if ids[id].p == p {
			delete(ids, id)
		}
	}
	t.byID.Store(&ids)
}

// send writes one datagram without blocking (see newNonblockingSender).
func (t *Transport) send(b []byte, to *net.UDPAddr) (int, error) {
	if t.isClosed() {
		return 0, net.ErrClosed
	}
	if t.sendRaw != nil {
		if err := t.sendRaw(b, to); err != nil {
			if errors.Is(err, errSendBufferFull) {
				t.stats.sendDrops.Add(1)
				return len(b), nil // dropped like a full router queue; uTP retransmits
			}
			t.stats.sendDrops.Add(1)
			return 0, &net.OpError{Op: "write", Net: "udp", Addr: to, Err: err}
		}
		return len(b), nil
	}
	n, err := t.pc.WriteTo(b, to)
	if err != nil {
		t.stats.sendDrops.Add(1)
	}
	return n, err
}

func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// Stats counts datagrams the Transport dropped on purpose. Everything dropped for its content is dropped before any
// uTP code sees it.
type Stats struct {
	// Stranger: datagrams that are neither STUN nor sealed for a path on this Transport (a plain uTP packet, a
	// spoofed reset, scanning, a path already closed).
	Stranger uint64
	// Unopened: datagrams sealed for one of our paths that did not open with its key: tampered with, forged, or
	// sealed with another key.
	Unopened uint64
	// Replayed: datagrams that opened but whose counter was seen before or is older than the replay window.
	Replayed uint64
	// SendDropped: datagrams dropped because the socket's send buffer was full (sending never waits) or the send
	// failed.
	SendDropped uint64
}

// Stats returns the Transport's drop counters.
func (t *Transport) Stats() Stats {
	return Stats{
		Stranger:    t.stats.stranger.Load(),
		Unopened:    t.stats.unopened.Load(),
		Replayed:    t.stats.replayed.Load(),
		SendDropped: t.stats.sendDrops.Load(),
	}
}
