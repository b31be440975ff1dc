package engine

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// mtuConn drops datagrams larger than limit, as a path with a smaller MTU
// than the hosts' would.
type mtuConn struct {
	net.PacketConn
	limit   int
	dropped atomic.Int64
}

func (c *mtuConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if len(b) > c.limit {
		c.dropped.Add(1)
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

func TestPathMTUDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name     string
		limit    int
		min, max int // where the search must end
	}{
		{"path carries the local maximum", 1472, 1472, 1472},
		{"smaller path MTU", 1350, 1335, 1350},
		{"path carries only the safe size", 1200, 1200, 1200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pcA := &mtuConn{PacketConn: listenUDP(t), limit: tc.limit}
			pcB := &mtuConn{PacketConn: listenUDP(t), limit: tc.limit}
			a := NewEndpoint(&udpLink{pc: pcA, peer: pcB.LocalAddr(), safe: 1200, max: 1472}, Config{})
			b := NewEndpoint(&udpLink{pc: pcB, peer: pcA.LocalAddr(), safe: 1200, max: 1472}, Config{})
			var wg sync.WaitGroup
			readLoop(pcA, a, &wg)
			readLoop(pcB, b, &wg)
			defer func() {
				a.Close()
				b.Close()
				pcA.Close()
				pcB.Close()
				wg.Wait()
			}()
			p := &pair{a: a, b: b}
			ca, cb := p.connect(t)
			transfer(t, ca, cb, randomBytes(4<<20, 31))
			got := ca.Stats().DatagramSize
			require.GreaterOrEqual(t, got, tc.min, "datagram size after discovery")
			require.LessOrEqual(t, got, tc.max, "datagram size after discovery")
			if tc.limit < 1472 {
				require.NotZero(t, pcA.dropped.Load(), "no probe was ever too big")
			}
			t.Logf("size %d, %d probes dropped, %+v", got, pcA.dropped.Load(), a.Stats())
		})
	}
}
