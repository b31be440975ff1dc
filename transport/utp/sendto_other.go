//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package utp

import "net"

// newNonblockingSender: no portable non-blocking send here; plain WriteTo is used.
func newNonblockingSender(net.PacketConn) func(b []byte, to *net.UDPAddr) error { return nil }
