package relay

import (
	"net"
	"sync"
	"time"

	"github.com/pion/turn/v4"
	"golang.org/x/time/rate"
)

// limitedGenerator hands pion's allocations relayed sockets that end after
// MaxLifetime and drop what exceeds RateLimit.
type limitedGenerator struct {
	inner turn.RelayAddressGenerator
	s     *Server
}

func (g *limitedGenerator) Validate() error { return g.inner.Validate() }

func (g *limitedGenerator) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	pc, addr, err := g.inner.AllocatePacketConn(network, port)
	if err != nil {
		return nil, nil, err
	}
	lc := &limitedConn{PacketConn: pc}
	if r := g.s.cfg.RateLimit; r > 0 {
		burst := max(r/10, 64<<10) // a tenth of a second, and at least a few jumbo datagrams
		lc.in = rate.NewLimiter(rate.Limit(r), burst)
		lc.out = rate.NewLimiter(rate.Limit(r), burst)
	}
	lc.timer = time.AfterFunc(g.s.cfg.MaxLifetime, func() {
		g.s.log.Info("relay: allocation reached its maximum lifetime", "relayed", addr)
		lc.Close()
	})
	return lc, addr, nil
}

func (g *limitedGenerator) AllocateConn(network string, port int) (net.Conn, net.Addr, error) {
	return g.inner.AllocateConn(network, port)
}

// limitedConn is a relayed socket: ReadFrom carries the peers' datagrams
// towards the client, WriteTo the client's towards the peers.
type limitedConn struct {
	net.PacketConn
	in, out *rate.Limiter // nil: unlimited
	timer   *time.Timer
	once    sync.Once
}

func (c *limitedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil || c.in == nil || c.in.AllowN(time.Now(), n) {
			return n, from, err
		}
	}
}

func (c *limitedConn) WriteTo(b []byte, to net.Addr) (int, error) {
	if c.out != nil && !c.out.AllowN(time.Now(), len(b)) {
		return len(b), nil // dropped, as by a congested link
	}
	return c.PacketConn.WriteTo(b, to)
}

func (c *limitedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.timer.Stop()
		err = c.PacketConn.Close()
	})
	return err
}
