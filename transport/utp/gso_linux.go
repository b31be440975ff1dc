package utp

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newGSOSender returns a function that sends equal-sized datagrams (the last may be shorter) to one address with a
// single sendmsg the kernel splits (UDP generic segmentation offload, Linux 4.18+): one pass through the stack per
// batch instead of one per datagram. It never waits, and reports false when it cannot send this batch so (unequal
// sizes, too many, or a kernel without UDP_SEGMENT, after which it stays off). It returns nil unless pc is a plain
// IPv4 UDP socket.
func newGSOSender(pc net.PacketConn) func(bufs [][]byte, to *net.UDPAddr) (ok bool, err error) {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	if a, ok := uc.LocalAddr().(*net.UDPAddr); !ok || a.IP.To4() == nil {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var off atomic.Bool
	return func(bufs [][]byte, to *net.UDPAddr) (bool, error) {
		if off.Load() || len(bufs) < 2 || len(bufs) > gsoMaxSegments {
			return false, nil
		}
		seg := len(bufs[0])
		total := 0
		for i, b := range bufs {
			if len(b) > seg || len(b) < seg && i != len(bufs)-1 {
				return false, nil
			}
			total += len(b)
		}
		ip4 := to.IP.To4()
		if ip4 == nil || total > 65507 {
			return false, nil
		}
		buf := make([]byte, 0, total)
		for _, b := range bufs {
			buf = append(buf, b...)
		}
		oob := make([]byte, unix.CmsgSpace(2))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(seg)
		sa := &unix.SockaddrInet4{Port: to.Port}
		copy(sa.Addr[:], ip4)
		var sendErr error
		if err := rc.Write(func(fd uintptr) bool {
			_, sendErr = unix.SendmsgN(int(fd), buf, oob, sa, unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			return true, err
		}
		switch {
		case sendErr == nil:
			return true, nil
		case errors.Is(sendErr, syscall.EAGAIN):
			return true, errSendBufferFull
		case errors.Is(sendErr, syscall.EIO), errors.Is(sendErr, syscall.EINVAL), errors.Is(sendErr, syscall.ENOPROTOOPT):
			off.Store(true) // no segmentation offload here: send this batch and the next another way
			return false, nil
		}
		return true, sendErr
	}
}

// gsoMaxSegments is the kernel's limit on segments per send (UDP_MAX_SEGMENTS).
const gsoMaxSegments = 64
