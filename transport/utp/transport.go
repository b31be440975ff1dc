package utp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anacrolix/utp"
)

// Transport owns one UDP socket and everything that shares it: the STUN client, our control packets (punching,
// probes, keepalives, stream requests) and one anacrolix/utp Socket. A single goroutine reads the socket and sorts
// each packet: STUN (magic cookie) to the STUN client, control packets (first byte 0xD7) to the path whose key
// authenticates them, and the rest to uTP only if it comes from the peer of an established path.
type Transport struct {
	pc    net.PacketConn
	cfg   Config
	log   *slog.Logger
	local *net.UDPAddr
	rbuf  int
	wbuf  int
	sock  *utp.Socket
	mux   *utpPacketConn

	mu        sync.Mutex
	paths     map[*Path]struct{}          // connecting and established
	byRemote  map[netip.AddrPort]*Path    // established; uTP is accepted only from these addresses
	stunWait  map[[12]byte]chan stunReply // pending STUN transactions
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup
	utpDrops  atomic.Uint64
	dialSem   chan struct{}                         // bounds concurrent uTP dials
	sendRaw   func(b []byte, to *net.UDPAddr) error // non-blocking send on a plain UDP socket, or nil
	sendDrops atomic.Uint64
	v4, v6    bool // address families the socket can reach
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
// The Transport never sets deadlines on pc and reads it from a single goroutine; pc.WriteTo is called from several
// goroutines, some holding the uTP library's global lock, so it must not block for long.
func NewTransport(pc net.PacketConn, cfg Config) (*Transport, error) {
	cfg = cfg.withDefaults()
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
		byRemote: make(map[netip.AddrPort]*Path),
		stunWait: make(map[[12]byte]chan stunReply),
		done:     make(chan struct{}),
		dialSem:  make(chan struct{}, maxPendingDials),
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
	t.v4, t.v6 = families(pc, local)
	t.mux = &utpPacketConn{t: t}
	t.sock, err = utp.NewSocketFromPacketConnNoClose(t.mux)
	if err != nil {
		return nil, fmt.Errorf("utp: %w", err)
	}
	t.wg.Add(1)
	go t.acceptLoop()
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
	close(t.done)
	// Closing pc wakes the library's reader in our ReadFrom, which then returns empty datagrams (an error would
	// make the library log it) until CloseNow has marked the Socket destroyed and the reader exits.
	err := t.pc.Close()
	t.sock.CloseNow()
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

// dispatch sorts one datagram: control packets and STUN are handled here; for uTP it returns the address to hand
// the library, or nil when the datagram is dropped.
func (t *Transport) dispatch(b []byte, from netip.AddrPort) *net.UDPAddr {
	switch {
	case isControl(b):
		t.handleControl(b, from)
	case isSTUN(b):
		t.handleSTUN(b, from)
	default:
		return t.utpSource(from)
	}
	return nil
}

func (t *Transport) handleControl(b []byte, from netip.AddrPort) {
	p, err := parseCtrl(b)
	if err != nil {
		return
	}
	t.mu.Lock()
	paths := make([]*Path, 0, len(t.paths))
	for path := range t.paths {
		paths = append(paths, path)
	}
	t.mu.Unlock()
	for _, path := range paths {
		if path.recvMac.verify(b) {
			path.handleControl(p, from)
			return
		}
	}
	// Unauthenticated: dropped without an answer.
}

// utpSource returns the address to give the library for a uTP datagram from `from`, or nil (and counts a drop)
// when `from` is not the peer of an established path: a stranger's SYN never reaches the library.
func (t *Transport) utpSource(from netip.AddrPort) *net.UDPAddr {
	t.mu.Lock()
	path := t.byRemote[from]
	t.mu.Unlock()
	if path == nil {
		t.utpDrops.Add(1)
		return nil
	}
	addr := path.remoteUDP // the library keys connections by address string: reuse one *net.UDPAddr
	if ap, _ := addrPortOf(addr); ap != from {
		addr = net.UDPAddrFromAddrPort(from)
	}
	return addr
}

// register makes path known to the demultiplexer.
func (t *Transport) register(p *Path) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrTransportClosed
	}
	t.paths[p] = struct{}{}
	return nil
}

// establish lets uTP packets from remote through to the library, for path p.
func (t *Transport) establish(p *Path, remote netip.AddrPort) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if other := t.byRemote[remote]; other != nil && other != p {
		return fmt.Errorf("utp: another path to %v is already established", remote)
	}
	t.byRemote[remote] = p
	return nil
}

func (t *Transport) unregister(p *Path) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.paths, p)
	for a, q := range t.byRemote {
		if q == p {
			delete(t.byRemote, a)
		}
	}
}

func (t *Transport) pathFor(remote netip.AddrPort) *Path {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byRemote[remote]
}

// send writes one datagram without blocking (see newNonblockingSender).
func (t *Transport) send(b []byte, to net.Addr) (int, error) {
	if ua, ok := to.(*net.UDPAddr); ok && t.sendRaw != nil {
		if err := t.sendRaw(b, ua); err != nil {
			if errors.Is(err, errSendBufferFull) {
				t.sendDrops.Add(1)
				return len(b), nil // dropped like a full router queue; uTP retransmits
			}
			return 0, &net.OpError{Op: "write", Net: "udp", Addr: to, Err: err}
		}
		return len(b), nil
	}
	return t.pc.WriteTo(b, to)
}

func (t *Transport) writeTo(b []byte, to *net.UDPAddr) {
	// net.ErrClosed: Close is closing the socket under a send that checked isClosed a moment earlier.
	if _, err := t.send(b, to); err != nil && !t.isClosed() && !errors.Is(err, net.ErrClosed) {
		t.log.Debug("utp: send", "to", to, "err", err)
	}
}

// acceptLoop takes every uTP connection the library accepts (only peers of established paths get that far) and
// authenticates it in its own goroutine.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.sock.Accept()
		if err != nil {
			if !t.isClosed() {
				t.log.Warn("utp: accept", "err", err)
			}
			return
		}
		remote, err := netip.ParseAddrPort(c.RemoteAddr().String())
		path := t.pathFor(netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port()))
		if err != nil || path == nil {
			c.Close()
			continue
		}
		go path.acceptHandshake(c)
	}
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

// utpPacketConn is the net.PacketConn the uTP library reads and writes. The library's single reader goroutine
// calls ReadFrom, which reads the socket itself and handles STUN and control packets in place (outside the
// library's lock), returning only the uTP datagrams of established paths: no extra goroutine or copy per packet.
// Writes go straight to the socket, never waiting.
type utpPacketConn struct{ t *Transport }

func (c *utpPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	t := c.t
	for {
		n, from, err := t.pc.ReadFrom(b)
		if err != nil {
			if t.isClosed() {
				// Only until CloseNow, running now, marks the Socket destroyed.
				time.Sleep(time.Millisecond)
				return 0, t.local, nil
			}
			if errors.Is(err, net.ErrClosed) {
				// The socket was closed under us: paths die of silence; the library waits for Close.
				t.log.Warn("utp: socket closed outside Transport.Close")
				<-t.done
				continue
			}
			// ICMP errors (e.g. port unreachable from a candidate that is not there) surface here on some systems.
			t.log.Debug("utp: socket read", "err", err)
			continue
		}
		ap, ok := addrPortOf(from)
		if !ok {
			continue
		}
		if addr := t.dispatch(b[:n], ap); addr != nil {
			return n, addr, nil
		}
	}
}

// WriteTo never fails: a datagram that cannot be sent (socket closed, network unreachable, Transport closed while
// the library's lingering connections still resend) counts as lost, as UDP would lose it. An error would make the
// library destroy the connection at once or log it; loss is what its retransmissions and our dead-path detection
// already handle.
func (c *utpPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.t.isClosed() {
		return len(b), nil
	}
	if _, err := c.t.send(b, addr); err != nil {
		c.t.sendDrops.Add(1)
		if !errors.Is(err, net.ErrClosed) { // Close is closing the socket under this send
			c.t.log.Debug("utp: send", "to", addr, "err", err)
		}
	}
	return len(b), nil
}
func (c *utpPacketConn) LocalAddr() net.Addr { return c.t.local }

// Close is a no-op (the library gets this conn through its NoClose constructor anyway): Transport.Close closes
// the socket.
func (c *utpPacketConn) Close() error { return nil }

// Deadlines are never set on the shared socket; the library does not call these.
func (c *utpPacketConn) SetDeadline(time.Time) error      { return nil }
func (c *utpPacketConn) SetReadDeadline(time.Time) error  { return nil }
func (c *utpPacketConn) SetWriteDeadline(time.Time) error { return nil }

// Stats counts datagrams the Transport dropped on purpose.
type Stats struct {
	// UTPDropped: datagrams for uTP dropped before the library because they came from an address that is not the
	// peer of an established path (strangers' SYNs among them).
	UTPDropped uint64
	// SendDropped: datagrams dropped because the socket's send buffer was full (sending never waits) or the send
	// failed.
	SendDropped uint64
}

// Stats returns the Transport's drop counters.
func (t *Transport) Stats() Stats {
	return Stats{UTPDropped: t.utpDrops.Load(), SendDropped: t.sendDrops.Load()}
}
