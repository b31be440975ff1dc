package relay

import (
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// Listen gives the UDP socket and the TCP listener one port, and says so when a given port is taken for TCP.
func TestListen(t *testing.T) {
	pc, l, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	defer l.Close()
	require.Equal(t, pc.LocalAddr().(*net.UDPAddr).Port, l.Addr().(*net.TCPAddr).Port, "one port for UDP and TCP")

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	_, _, err = Listen(taken.Addr().String())
	require.ErrorIs(t, err, syscall.EADDRINUSE, "a given port taken for TCP")

	_, _, err = Listen("no port")
	require.Error(t, err)
}
