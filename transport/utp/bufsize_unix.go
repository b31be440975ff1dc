//go:build unix

package utp

import "syscall"

func socketBufferSizes(sc syscall.Conn) (read, write int, err error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		read, opErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		if opErr == nil {
			write, opErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		}
	})
	if err == nil {
		err = opErr
	}
	return read, write, err
}
