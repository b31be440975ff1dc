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

// socketFamilies reports which address families the socket can send to: an AF_INET socket only IPv4, an AF_INET6
// one IPv6, plus IPv4 unless IPV6_V6ONLY is set (Go sets it for "udp6", clears it for "udp").
func socketFamilies(sc syscall.Conn) (v4, v6 bool, err error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, false, err
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		var sa syscall.Sockaddr
		if sa, opErr = syscall.Getsockname(int(fd)); opErr != nil {
			return
		}
		if _, ok := sa.(*syscall.SockaddrInet6); !ok {
			v4 = true
			return
		}
		v6 = true
		only, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY)
		v4 = err == nil && only == 0
	})
	if err == nil {
		err = opErr
	}
	return v4, v6, err
}
