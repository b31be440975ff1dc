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
	t.mux = &utpPacketConn{t: t, in: make(chan utpPacket, utpQueue), closed: make(chan struct{})}
	t.sock, err = utp.NewSocketFromPacketConnNoClose(t.mux)
	if err != nil {
		return nil, fmt.Errorf("utp: %w", err)
	}
	t.wg.Add(2)
	go t.readLoop()
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
	// CloseNow destroys every uTP connection and then waits for the library's reader to leave ReadFrom, which our
	// closed queue makes return empty datagrams (an error would make the library log it) until the reader sees the
	// Socket destroyed and exits.
	t.mux.close()
	t.sock.CloseNow()
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

func (t *Transport) readLoop() {
	defer t.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := t.pc.ReadFrom(buf)
		if err != nil {
			if t.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors (e.g. port unreachable from a candidate that is not there) surface here on some systems.
			t.log.Debug("utp: socket read", "err", err)
			continue
		}
		ap, ok := addrPortOf(from)
		if !ok {
			continue
		}
		t.dispatch(buf[:n], ap)
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

// dispatch sorts one datagram: control packets, STUN, and the rest to uTP.
func (t *Transport) dispatch(b []byte, from netip.AddrPort) {
	switch {
	case isControl(b):
		t.handleControl(b, from)
	case isSTUN(b):
		t.handleSTUN(b, from)
	default:
		t.handleUTP(b, from)
	}
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

func (t *Transport) handleUTP(b []byte, from netip.AddrPort) {
	t.mu.Lock()
	path := t.byRemote[from]
	t.mu.Unlock()
	if path == nil || len(b) > utpMaxPacket {
		// A stranger's SYN (or anything else) never reaches the library.
		t.utpDrops.Add(1)
		return
	}
	addr := path.remoteUDP // the library keys connections by address string: reuse one *net.UDPAddr
	if ap, _ := addrPortOf(addr); ap != from {
		addr = net.UDPAddrFromAddrPort(from)
	}
	bp := packetPool.Get().(*[utpMaxPacket]byte)
	n := copy(bp[:], b)
	select {
	case t.mux.in <- utpPacket{buf: bp, n: n, from: addr}:
	default:
		packetPool.Put(bp)
		t.utpDrops.Add(1)
	}
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
	if _, err := t.send(b, to); err != nil && !t.isClosed() {
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

// utpPacketConn is the net.PacketConn the uTP library reads and writes: reads come from the demultiplexer's queue,
// writes go straight to the socket.
type utpPacketConn struct {
	t      *Transport
	in     chan utpPacket
	closed chan struct{}
	once   sync.Once
}

type utpPacket struct {
	buf  *[utpMaxPacket]byte
	n    int
	from *net.UDPAddr
}

const (
	// utpMaxPacket is larger than anything the library sends (1438 bytes); larger datagrams are not uTP.
	utpMaxPacket = 2048
	// utpQueue packets may wait between the demultiplexer and the library; past that they are dropped, as a full
	// socket buffer would.
	utpQueue = 2048
)

var packetPool = sync.Pool{New: func() any { return new([utpMaxPacket]byte) }}

func (c *utpPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-c.in:
		n := copy(b, p.buf[:p.n])
		packetPool.Put(p.buf)
		return n, p.from, nil
	case <-c.closed:
		time.Sleep(time.Millisecond) // only until CloseNow, running now, marks the Socket destroyed
		return 0, c.t.local, nil
	}
}

func (c *utpPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.t.send(b, addr) }
func (c *utpPacketConn) LocalAddr() net.Addr                          { return c.t.local }
func (c *utpPacketConn) close()                                       { c.once.Do(func() { close(c.closed) }) }

// Close is a no-op: the Transport closes the queue itself, after the library's Socket.
func (c *utpPacketConn) Close() error { return nil }

// Deadlines are never set on the shared socket; the library does not call these.
func (c *utpPacketConn) SetDeadline(time.Time) error      { return nil }
func (c *utpPacketConn) SetReadDeadline(time.Time) error  { return nil }
func (c *utpPacketConn) SetWriteDeadline(time.Time) error { return nil }

// Stats counts datagrams the Transport dropped on purpose.
type Stats struct {
	// UTPDropped: uTP-looking datagrams dropped before the library: from addresses that are not the peer of an
	// established path (strangers' SYNs among them), or because the library fell behind.
	UTPDropped uint64
	// SendDropped: datagrams dropped because the socket's send buffer was full (sending never waits).
	SendDropped uint64
}

// Stats returns the Transport's drop counters.
func (t *Transport) Stats() Stats {
	return Stats{UTPDropped: t.utpDrops.Load(), SendDropped: t.sendDrops.Load()}
}
