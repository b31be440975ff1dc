//go:build linux || darwin || freebsd || netbsd || openbsd

package utp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
)

// newNonblockingSender returns a function that sends a datagram on pc without ever waiting: when the kernel's send
// buffer is full the datagram is dropped (and the error says so), as a router would drop it. The uTP engine
// writes while holding a stream's lock, so a send that waited for buffer space would stall the stream's receive
// path too.
// It returns nil when pc is not a plain UDP socket; wrappers are then trusted not to block.
func newNonblockingSender(pc net.PacketConn) func(b []byte, to *net.UDPAddr) error {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var inet6 bool
	var nameErr error
	if err := rc.Control(func(fd uintptr) {
		var sa syscall.Sockaddr
		sa, nameErr = syscall.Getsockname(int(fd))
		_, inet6 = sa.(*syscall.SockaddrInet6)
	}); err != nil || nameErr != nil {
		return nil
	}
	var cache sockaddrCache
	return func(b []byte, to *net.UDPAddr) error {
		sa, err := cache.get(to, inet6)
		if err != nil {
			return err
		}
		var sendErr error
		err = rc.Write(func(fd uintptr) bool {
			sendErr = syscall.Sendto(int(fd), b, syscall.MSG_DONTWAIT, sa)
			return true // never wait for the socket to become writable
		})
		if err != nil {
			return err
		}
		if errors.Is(sendErr, syscall.EAGAIN) {
			return errSendBufferFull
		}
		return sendErr
	}
}

// sockaddrCache holds the system form of the last destination: a path sends to one address for long.
type sockaddrCache struct {
	last atomic.Pointer[cachedSockaddr]
}

type cachedSockaddr struct {
	ap   netip.AddrPort
	zone string
	sa   syscall.Sockaddr
}

func (c *sockaddrCache) get(to *net.UDPAddr, inet6 bool) (syscall.Sockaddr, error) {
	ap := to.AddrPort()
	if e := c.last.Load(); e != nil && e.ap == ap && e.zone == to.Zone {
		return e.sa, nil
	}
	sa, err := sockaddr(to, inet6)
	if err != nil {
		return nil, err
	}
	c.last.Store(&cachedSockaddr{ap: ap, zone: to.Zone, sa: sa})
	return sa, nil
}

func sockaddr(a *net.UDPAddr, inet6 bool) (syscall.Sockaddr, error) {
	if ip4 := a.IP.To4(); ip4 != nil && !inet6 {
		sa := &syscall.SockaddrInet4{Port: a.Port}
		copy(sa.Addr[:], ip4)
		return sa, nil
	}
	if !inet6 {
		return nil, errors.New("utp: IPv6 destination on an IPv4 socket")
	}
	ip := a.IP.To16()
	if ip == nil {
		return nil, errors.New("utp: invalid destination address")
	}
	sa := &syscall.SockaddrInet6{Port: a.Port}
	copy(sa.Addr[:], ip)
	if a.Zone != "" {
		if ifi, err := net.InterfaceByName(a.Zone); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, nil
}

// newBatchSender returns a function that sends datagrams to one address with as few system calls as the platform
// allows (on Linux one segmentation-offloaded sendmsg per run of equal-sized datagrams, sendmmsg for what does not
// form one), never waiting: it returns how many the kernel took; the rest were dropped for a full send buffer
// (errSendBufferFull) or an error. It returns nil unless pc is a plain IPv4 UDP socket.
func newBatchSender(pc net.PacketConn) func(bufs [][]byte, to *net.UDPAddr) (int, error) {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	if a, ok := uc.LocalAddr().(*net.UDPAddr); !ok || a.IP.To4() == nil {
		return nil // an IPv6 or dual-stack socket: per-datagram sends handle its address forms
	}
	bc := ipv4.NewPacketConn(uc)
	gso := newGSOSender(pc)
	return func(bufs [][]byte, to *net.UDPAddr) (int, error) {
		sent := 0
		for gso != nil && sent < len(bufs) {
			n, err := gso(bufs[sent:], to)
			if err != nil {
				return sent, err
			}
			if n == 0 {
				break // what is left goes by sendmmsg
			}
			sent += n
		}
		if sent == len(bufs) {
			return sent, nil
		}
		mp := sendMsgs.Get().(*[]ipv4.Message)
		defer sendMsgs.Put(mp)
		msgs := (*mp)[:0]
		for _, b := range bufs[sent:] {
			msgs = append(msgs, ipv4.Message{Buffers: [][]byte{b}, Addr: to})
		}
		*mp = msgs
		defer clear(msgs)
		for len(msgs) > 0 {
			n, err := bc.WriteBatch(msgs, syscall.MSG_DONTWAIT)
			sent += max(n, 0)
			if errors.Is(err, syscall.EAGAIN) {
				return sent, errSendBufferFull
			}
			if err != nil {
				return sent, err
			}
			if n <= 0 {
				return sent, errSendBufferFull
			}
			msgs = msgs[n:]
		}
		return sent, nil
	}
}

// sendMsgs holds the message lists of batched sends.
var sendMsgs = sync.Pool{New: func() any { return new([]ipv4.Message) }}
