package utp

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/utp"
)

// anacrolixEngine runs anacrolix/utp over a path: one utp.Socket per path, on a net.PacketConn whose only peer is
// a stable pseudo address. The library never sees a real address, so a route change (NAT rebinding, relay and
// direct) never breaks its connections; everything it reads was opened by the path.
type anacrolixEngine struct {
	sock *utp.Socket
	pc   *linkPacketConn
}

func newAnacrolixEngine(l link, pathID uint64, drops *atomic.Uint64) (*anacrolixEngine, error) {
	pc := &linkPacketConn{
		l:      l,
		peer:   pseudoAddr(pathID, 1),
		local:  pseudoAddr(pathID, 2),
		in:     make(chan *[]byte, engineQueue),
		closed: make(chan struct{}),
		drops:  drops,
	}
	sock, err := utp.NewSocketFromPacketConn(pc) // the Socket closes pc when destroyed
	if err != nil {
		return nil, err
	}
	return &anacrolixEngine{sock: sock, pc: pc}, nil
}

// engineQueue is how many opened datagrams wait for the library's reader before more are dropped (as a full
// socket buffer would drop them).
const engineQueue = 4096

// pseudoAddr is an address in the IPv6 discard-only prefix 100::/64 (RFC 6666): it names the path to the library
// and is never sent to.
func pseudoAddr(pathID uint64, port int) *net.UDPAddr {
	var ip [16]byte
	ip[0], ip[1] = 0x01, 0x00
	for i := range 8 {
		ip[8+i] = byte(pathID >> (56 - 8*i))
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(ip), uint16(port)))
}

var _ datagramSink = (*anacrolixEngine)(nil)

func (e *anacrolixEngine) DeliverDatagram(b []byte) { e.pc.deliver(b) }

// peerAddr is what to dial.
func (e *anacrolixEngine) peerAddr() string { return e.pc.peer.String() }

func (e *anacrolixEngine) close() { e.sock.CloseNow() }

// linkPacketConn is the net.PacketConn the library reads and writes: reads come from the path's opened datagrams,
// writes go to the link.
type linkPacketConn struct {
	l           link
	peer, local *net.UDPAddr
	in          chan *[]byte
	closeOnce   sync.Once
	closed      chan struct{}
	drops       *atomic.Uint64
}

var recvBufs = sync.Pool{New: func() any { b := make([]byte, 0, maxSealed); return &b }}

func (c *linkPacketConn) deliver(b []byte) {
	buf := recvBufs.Get().(*[]byte)
	*buf = append((*buf)[:0], b...)
	select {
	case c.in <- buf:
	default:
		recvBufs.Put(buf)
		c.drops.Add(1)
	}
}

func (c *linkPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case buf := <-c.in:
		n := copy(b, *buf)
		recvBufs.Put(buf)
		return n, c.peer, nil
	case <-c.closed:
		// Closed by the Socket's destroy, which marked it destroyed first: the reader exits without logging.
		return 0, nil, net.ErrClosed
	}
}

// WriteTo never fails: a datagram that cannot be sent counts as lost, as UDP would lose it (an error would make the
// library destroy the connection or log).
func (c *linkPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.l.WriteDatagrams([][]byte{b})
	return len(b), nil
}

func (c *linkPacketConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *linkPacketConn) LocalAddr() net.Addr { return c.local }

// Deadlines are never set; the library does not call these.
func (c *linkPacketConn) SetDeadline(time.Time) error      { return nil }
func (c *linkPacketConn) SetReadDeadline(time.Time) error  { return nil }
func (c *linkPacketConn) SetWriteDeadline(time.Time) error { return nil }
