package utp

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newGSOSender returns a function that sends a run of equal-sized datagrams (the last may be shorter) to one address
// with a single sendmsg the kernel splits (UDP generic segmentation offload, Linux 4.18+): one pass through the stack
// per run instead of one per datagram. It sends the longest such run at the start of bufs that one send may carry
// (gsoMaxSegments, and 65,507 bytes in all) and returns how many datagrams that was, so a caller sends a long batch
// run by run. It never waits, and returns 0 when it cannot send even two datagrams so (unequal sizes, or a kernel
// without UDP_SEGMENT, after which it stays off). It returns nil unless pc is a plain IPv4 UDP socket.
func newGSOSender(pc net.PacketConn) func(bufs [][]byte, to *net.UDPAddr) (n int, err error) {
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
	return func(bufs [][]byte, to *net.UDPAddr) (int, error) {
		ip4 := to.IP.To4()
		if off.Load() || len(bufs) < 2 || ip4 == nil {
			return 0, nil
		}
		seg := len(bufs[0])
		n, total := 0, 0
		for _, b := range bufs {
			if n == gsoMaxSegments || len(b) > seg || total+len(b) > gsoMaxBytes {
				break
			}
			n++
			total += len(b)
			if len(b) < seg {
				break // a shorter datagram ends the run
			}
		}
		if n < 2 {
			return 0, nil
		}
		bufs = bufs[:n]
		s := gsoScratches.Get().(*gsoScratch)
		defer gsoScratches.Put(s)
		buf, ok := adjoining(bufs, total)
		if !ok {
			buf = s.buf[:0]
			for _, b := range bufs {
				buf = append(buf, b...)
			}
			s.buf = buf
		}
		oob := s.oob[:unix.CmsgSpace(2)]
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(seg)
		s.sa.Port = to.Port
		copy(s.sa.Addr[:], ip4)
		var sendErr error
		if err := rc.Write(func(fd uintptr) bool {
			_, sendErr = unix.SendmsgN(int(fd), buf, oob, &s.sa, unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			return 0, err
		}
		switch {
		case sendErr == nil:
			return n, nil
		case errors.Is(sendErr, syscall.EAGAIN):
			return 0, errSendBufferFull
		case errors.Is(sendErr, syscall.EIO), errors.Is(sendErr, syscall.EINVAL), errors.Is(sendErr, syscall.ENOPROTOOPT):
			off.Store(true) // no segmentation offload here: send this batch and the next another way
			return 0, nil
		}
		return 0, sendErr
	}
}

// adjoining returns bufs as one slice, without copying, when each follows the one before in the same array.
func adjoining(bufs [][]byte, total int) ([]byte, bool) {
	all := bufs[0][:cap(bufs[0])]
	if len(all) < total {
		return nil, false
	}
	off := 0
	for _, b := range bufs {
		if len(b) > 0 && &all[off] != &b[0] {
			return nil, false
		}
		off += len(b)
	}
	return all[:total], true
}

// gsoScratch is what one segmentation-offloaded send builds: the datagrams end to end, the control message and the
// destination. Pooled, so a send allocates nothing.
type gsoScratch struct {
	buf []byte
	oob [64]byte
	sa  unix.SockaddrInet4
}

var gsoScratches = sync.Pool{New: func() any { return &gsoScratch{buf: make([]byte, 0, gsoMaxBytes)} }}

// gsoMaxSegments is the kernel's limit on segments per send (UDP_MAX_SEGMENTS); gsoMaxBytes the largest UDP payload
// of one send, which the kernel then splits.
const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 65507
)

// enableGRO asks the kernel to coalesce bursts of datagrams from one sender into one read (UDP_GRO, Linux 5.0+),
// reporting whether it will; the reader must then split each read by the segment size groSegmentSize finds.
func enableGRO(uc *net.UDPConn) bool {
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var sockErr error
	if err := rc.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
	}); err != nil || sockErr != nil {
		return false
	}
	return true
}

// groSegmentSize is the size of the datagrams the kernel coalesced into one read, from the read's control data, or
// 0 when it did not coalesce.
func groSegmentSize(oob []byte) int {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < unix.CmsgLen(0) || n > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && n >= unix.CmsgLen(2) {
			data := oob[unix.CmsgLen(0):n]
			if len(data) >= 4 {
				return int(*(*int32)(unsafe.Pointer(&data[0])))
			}
			return int(*(*uint16)(unsafe.Pointer(&data[0])))
		}
		oob = oob[min(unix.CmsgSpace(n-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}
