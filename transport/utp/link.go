package utp

import (
	"net"
	"sync"
)

// link is the path as a uTP engine sees it: datagrams to and from "the peer", never an address. The path seals
// what the engine writes and sends it on its current route; it hands the engine, through datagramSink, only what
// opened with the session's keys and passed the replay window.
type link interface {
	// WriteDatagrams sends each buffer to the peer, sealed; the buffers may be reused when it returns.
	WriteDatagrams(bufs [][]byte) error
	// DatagramSizes: safe is the largest datagram that fits a 1,200-byte UDP payload once sealed (it crosses any
	// internet path); max fits the local interface's MTU.
	DatagramSizes() (safe, max int)
}

// datagramSink is the engine side of the seam: the path delivers each opened datagram with DeliverDatagram (b is
// only valid during the call).
type datagramSink interface {
	DeliverDatagram(b []byte)
}

var _ link = pathLink{}

// pathLink is the link of one path.
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
	for _, b := range bufs {
		p.sendSealed(r, kindDatagram, b, false)
	}
	return nil
}

func (l pathLink) DatagramSizes() (safe, max int) {
	// One byte of every sealed plaintext is its kind.
	return 1200 - sealedOverhead - 1, l.p.t.maxUDPPayload - sealedOverhead - 1
}

// sealBufs holds buffers for sealing datagrams: a uTP packet plus the seal fits maxSealed; larger datagrams
// (possible on loopback) get a buffer of their own.
var sealBufs = sync.Pool{New: func() any { b := make([]byte, maxSealed); return &b }}

const maxSealed = 2048

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
