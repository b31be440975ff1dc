//go:build !linux

package utp

import "net"

// newGSOSender: UDP segmentation offload is Linux only.
func newGSOSender(net.PacketConn) func(bufs [][]byte, to *net.UDPAddr) (ok bool, err error) {
	return nil
}
