//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package utp

import "net"

// newNonblockingSender: no portable non-blocking send here; plain WriteTo is used.
func newNonblockingSender(net.PacketConn) func(b []byte, to *net.UDPAddr) error { return nil }

// newBatchSender: no batched send here; datagrams are sent one by one.
func newBatchSender(net.PacketConn) func(bufs [][]byte, to *net.UDPAddr) (int, error) { return nil }
