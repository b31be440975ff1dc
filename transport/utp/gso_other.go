//go:build !linux

package utp

import "net"

// newGSOSender: UDP segmentation offload is Linux only.
func newGSOSender(net.PacketConn) func(bufs [][]byte, to *net.UDPAddr) (n int, err error) {
	return nil
}

// enableGRO: UDP receive offload is Linux only.
func enableGRO(*net.UDPConn) bool { return false }

// groSegmentSize: never coalesced here.
func groSegmentSize([]byte) int { return 0 }
