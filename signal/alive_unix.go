//go:build linux || darwin || freebsd || netbsd || openbsd

package signal

import (
	"net"
	"syscall"
)

// connAlive peeks at a parked connection without blocking and without
// consuming data: a read of 0 bytes means the client closed it.
func connAlive(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n > 0 || rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK || rerr == syscall.EINTR
		return true // never wait for readiness
	})
	return err == nil && alive
}
