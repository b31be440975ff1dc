package utp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// auxSocket is an extra UDP socket of a path, opened for a hard-NAT punch (punch_hardnat.go). What it reads goes through
// the Transport's demultiplexer as the main socket's sealed datagrams do (anything else is a stranger's, dropped and
// counted), with the socket as the way it came, so that the path answers from the same socket: a socketRoute.
type auxSocket struct {
	t       *Transport
	pc      *net.UDPConn
	port    uint16                                // local port: names the socket's routes
	sendRaw func(b []byte, to *net.UDPAddr) error // non-blocking send, or nil
	batch   atomic.Pointer[batchFunc]             // batched send, once a route kept the socket (enableBatch)
	kept    atomic.Bool                           // a route kept the socket: read in batches
	closed  sync.Once
	read    chan struct{} // closed when readLoop returns
}

type batchFunc = func(bufs [][]byte, to *net.UDPAddr) (int, error)

var _ routeVia = (*auxSocket)(nil)

// listenAux binds extra socket i on the main socket's address, on a port of the kernel's choice.
func (t *Transport) listenAux(i int) (*auxSocket, error) {
	port := 0
	if t.cfg.auxPortBase > 0 {
		port = t.cfg.auxPortBase + i
	}
	pc, err := net.ListenUDP(t.network(), &net.UDPAddr{IP: t.local.IP, Port: port, Zone: t.local.Zone})
	if err != nil {
		return nil, err
	}
	s := &auxSocket{t: t, pc: pc, port: uint16(pc.LocalAddr().(*net.UDPAddr).Port), sendRaw: newNonblockingSender(pc),
		read: make(chan struct{})}
	go s.readLoop()
	return s, nil
}

// readLoop hands what arrives to the demultiplexer until the socket is closed. Sealed datagrams are at most
// maxRoutePayload bytes, so a small buffer does for each of a path's many extra sockets; the one kept for the path's
// route (enableBatch) reads in batches, as the Transport's socket does.
func (s *auxSocket) readLoop() {
	defer close(s.read)
	buf := make([]byte, maxSealed)
	for !s.kept.Load() {
		n, from, err := s.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. an ICMP error from a port that was not there
		}
		s.t.dispatchSealed(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), s, nil)
	}
	r := newBatchReader(s.pc)
	rx := &rxBatch{}
	deliver := func(b []byte, from netip.AddrPort) { s.t.dispatchSealed(b, from, s, rx) }
	for {
		n, err := r.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r.datagrams(n, deliver)
		rx.flush()
	}
}

// enableBatch lets the socket send and read several datagrams per system call, as the Transport's socket does: for
// the one socket that carries a path, not for the many a punch opens (each batch reader holds half a megabyte).
func (s *auxSocket) enableBatch() {
	s.kept.Store(true)
	if f := newBatchSender(s.pc); f != nil {
		s.batch.Store(&f)
	}
}

// close closes the socket and waits until its reads stopped.
func (s *auxSocket) close() {
	s.closed.Do(func() { s.pc.Close() })
	<-s.read
}

// send writes one datagram without waiting: a full send buffer drops it, as Transport.send does.
func (s *auxSocket) send(b []byte, to *net.UDPAddr) error {
	var err error
	if s.sendRaw != nil {
		err = s.sendRaw(b, to)
	} else {
		_, err = s.pc.WriteToUDP(b, to)
	}
	if err != nil {
		s.t.stats.sendDrops.Add(1)
		if errors.Is(err, errSendBufferFull) {
			return nil
		}
		return &net.OpError{Op: "write", Net: "udp", Addr: to, Err: err}
	}
	return nil
}

func (s *auxSocket) route(addr netip.AddrPort) route {
	return &socketRoute{s: s, addr: addr, udp: net.UDPAddrFromAddrPort(addr)}
}

func (s *auxSocket) routeID(addr netip.AddrPort) routeID {
	return routeID{kind: routeDirect, addr: addr, sock: s.port}
}

// socketRoute is a direct route from an extra socket of the path to one of the peer's addresses. It ranks as the
// peer's address does, like a directRoute.
type socketRoute struct {
	s    *auxSocket
	addr netip.AddrPort
	udp  *net.UDPAddr
}

var _ batchSender = (*socketRoute)(nil)

func (r *socketRoute) send(b []byte) error { return r.s.send(b, r.udp) }

// sendBatch sends bufs without waiting, in one system call where enableBatch made that possible; a full send buffer
// drops (and counts) what it could not take.
func (r *socketRoute) sendBatch(bufs [][]byte) error {
	f := r.s.batch.Load()
	if f == nil {
		for _, b := range bufs {
			if err := r.s.send(b, r.udp); err != nil {
				return err
			}
		}
		return nil
	}
	n, err := (*f)(bufs, r.udp)
	if err == nil {
		return nil
	}
	r.s.t.stats.sendDrops.Add(uint64(len(bufs) - n))
	if errors.Is(err, errSendBufferFull) {
		return nil
	}
	return &net.OpError{Op: "write", Net: "udp", Addr: r.udp, Err: err}
}

func (r *socketRoute) id() routeID              { return r.s.routeID(r.addr) }
func (r *socketRoute) peerAddr() netip.AddrPort { return r.addr }
