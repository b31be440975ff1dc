package utp

import (
	"net"
	"runtime"
	"syscall"
)

// kernelBufferFactor is how much larger getsockopt reports a socket buffer than the size asked for: Linux doubles
// it for its own bookkeeping.
var kernelBufferFactor = map[bool]int{true: 2, false: 1}[runtime.GOOS == "linux"]

// setSocketBuffers asks for size bytes of receive and send buffer on pc (if it is a real socket, or wraps one and
// exposes these methods) and returns what the kernel reports afterwards. Linux doubles the request for its own
// bookkeeping and caps it at 2*net.core.rmem_max (wmem_max), so a granted 8 MiB means the 4 MiB request was met.
func setSocketBuffers(pc net.PacketConn, size int) (read, write int, err error) {
	type buffered interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}
	b, ok := pc.(buffered)
	if !ok {
		return 0, 0, nil
	}
	if err := b.SetReadBuffer(size); err != nil {
		return 0, 0, err
	}
	if err := b.SetWriteBuffer(size); err != nil {
		return 0, 0, err
	}
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return 0, 0, nil
	}
	return socketBufferSizes(sc)
}
