package utp

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/p2phttp/p2phttp/transport/utp/internal/engine"
)

var _ engine.ReadingLink = pathLink{}

// pathLink is the path as its uTP engine sees it: datagrams to and from "the peer", never an address. It seals what
// the engine writes and sends it on the path's current route; the path hands the engine only what opened with the
// session's keys and passed the replay window.
type pathLink struct{ p *Path }

func (p *Path) link() pathLink { return pathLink{p} }

func (l pathLink) WriteDatagrams(bufs [][]byte) error {
	p := l.p
	if isClosed(p.done) {
		return nil // late resends of connections being torn down
	}
	r := p.loadRoute()
	if r == nil {
		return nil
	}
	bs, ok := r.(batchSender)
	if !ok || len(bufs) == 1 {
		for _, b := range bufs {
			p.sendSealed(r, kindDatagram, b, false)
		}
		return nil
	}
	// The sealed datagrams lie end to end in one buffer, so a segmentation-offloaded send takes them as they are.
	sb := sealBatches.Get().(*sealBatch)
	total := 0
	for _, b := range bufs {
		total += sealedOverhead + 1 + len(b)
	}
	if cap(sb.buf) < total {
		sb.buf = make([]byte, total)
	}
	all := sb.buf[:total]
	off := 0
	for _, b := range bufs {
		buf := all[off : off+sealedHeader+1+len(b)]
		buf[sealedHeader] = byte(kindDatagram)
		copy(buf[sealedHeader+1:], b)
		d := p.keys.seal(buf, p.counter.Add(1))
		sb.sealed = append(sb.sealed, d)
		off += len(d)
	}
	err := bs.sendBatch(sb.sealed)
	clear(sb.sealed)
	sb.sealed = sb.sealed[:0]
	sealBatches.Put(sb)
	if err != nil && !p.t.isClosed() {
		p.log.Debug("utp: send", "route", r.id(), "err", err)
		p.routeDead(r, fmt.Errorf("%w: %w", errRouteDead, err))
	}
	return nil
}

// batchSender is a route that sends several datagrams at once (with one system call where the platform has one).
type batchSender interface {
	sendBatch(bufs [][]byte) error
}

var _ batchSender = (*directRoute)(nil)

func (r *directRoute) sendBatch(bufs [][]byte) error { return r.t.sendBatch(bufs, r.udp) }

// sendBatch writes datagrams to one address without blocking; like send, a full buffer drops (and counts) what it
// could not take.
func (t *Transport) sendBatch(bufs [][]byte, to *net.UDPAddr) error {
	if t.sendBatchRaw == nil {
		for _, b := range bufs {
			if _, err := t.send(b, to); err != nil {
				return err
			}
		}
		return nil
	}
	if t.isClosed() {
		return net.ErrClosed
	}
	n, err := t.sendBatchRaw(bufs, to)
	if err == nil {
		return nil
	}
	t.stats.sendDrops.Add(uint64(len(bufs) - n))
	if errors.Is(err, errSendBufferFull) {
		return nil // dropped like a full router queue; uTP retransmits
	}
	return &net.OpError{Op: "write", Net: "udp", Addr: to, Err: err}
}

// ReadUntil reads the Transport's socket in the calling goroutine (see readRole) while the path's route is on it.
func (l pathLink) ReadUntil(w engine.Waiter) bool {
	p := l.p
	if isClosed(p.done) {
		return false
	}
	if _, direct := p.loadRoute().(*directRoute); !direct {
		return false // its datagrams come on another socket or through a relay
	}
	return p.t.role.readUntil(w)
}

// Interrupt kicks a ReadUntil in progress.
func (l pathLink) Interrupt() {
	l.p.t.role.kick()
}

// WriteWaits has the background goroutine read the socket at once, or as soon as the Read that reads it returns
// (see readRole.writeWaits).
func (l pathLink) WriteWaits() {
	l.p.t.role.writeWaits()
}

// DatagramSizes: safe is the largest datagram that fits a 1,200-byte UDP payload once sealed (it crosses any internet
// path); max is the largest that fits both the local interface's MTU and maxRoutePayload. The engine reads them once
// per stream and its MTU discovery never goes back down, so max must hold on every route the path may move to.
func (l pathLink) DatagramSizes() (safe, max int) {
	// One byte of every sealed plaintext is its kind.
	return 1200 - sealedOverhead - 1, min(l.p.t.maxUDPPayload, maxRoutePayload) - sealedOverhead - 1
}

// maxRoutePayload is the largest UDP payload any route carries on a 1,500-byte MTU: a TURN relay wraps it in a Send
// indication (36 bytes of STUN header and attributes; ChannelData takes 4) inside IPv6 and UDP headers (48).
const maxRoutePayload = 1500 - 48 - 36

// sealBufs holds buffers for sealing datagrams: a uTP packet (at most maxRoutePayload once sealed) fits maxSealed;
// anything larger gets a buffer of its own.
var sealBufs = sync.Pool{New: func() any { b := make([]byte, maxSealed); return &b }}

const maxSealed = 2048

// sealBatch is the scratch of one batched write: the sealed datagrams, end to end in buf.
type sealBatch struct {
	buf    []byte
	sealed [][]byte
}

var sealBatches = sync.Pool{New: func() any { return new(sealBatch) }}

// udpOverhead is the IP and UDP header size in front of a datagram.
func udpOverhead(ipv6 bool) int {
	if ipv6 {
		return 40 + 8
	}
	return 20 + 8
}

// localMTU is the MTU of the interface the socket is bound to, or the smallest MTU of the up, non-loopback
// interfaces when it is bound to all of them (1,500 when none can be read).
func localMTU(local *net.UDPAddr) int {
	ifs, err := net.Interfaces()
	if err != nil {
		return 1500
	}
	mtu := 0
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.MTU <= 0 {
			continue
		}
		if !local.IP.IsUnspecified() {
			addrs, _ := ifc.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(local.IP) {
					return ifc.MTU
				}
			}
			continue
		}
		if ifc.Flags&net.FlagLoopback == 0 && (mtu == 0 || ifc.MTU < mtu) {
			mtu = ifc.MTU
		}
	}
	if mtu == 0 {
		return 1500
	}
	return mtu
}
