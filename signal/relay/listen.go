package relay

import (
	"net"
	"strconv"
)

// listenTries bounds the ports Listen tries for port 0.
const listenTries = 20

// Listen binds a relay's UDP socket on addr and, on the same port, its TCP listener, as New takes them: TURN
// clients are given one address for both. For port 0 it tries a few ports, since the one the system gave the UDP
// socket may be taken for TCP.
func Listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	tries := 1
	if port == "0" {
		tries = listenTries
	}
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)))
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if i+1 >= tries {
			return nil, nil, err
		}
	}
}
