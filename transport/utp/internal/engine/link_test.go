package engine

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/ipv4"

	"github.com/p2phttp/p2phttp/internal/netem"
)

// udpLink is a Link over a real UDP socket, pointed at one peer. It writes a
// batch with one sendmmsg where the platform has it, as a real link would.
type udpLink struct {
	pc        net.PacketConn
	peer      net.Addr
	safe, max int
	mu        sync.Mutex
	msgs      []ipv4.Message
}

func (l *udpLink) WriteDatagrams(bufs [][]byte) error {
	udp, ok := l.pc.(*net.UDPConn)
	if !ok || len(bufs) == 1 {
		for _, b := range bufs {
			if _, err := l.pc.WriteTo(b, l.peer); err != nil {
				return err
			}
		}
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = l.msgs[:0]
	for _, b := range bufs {
		l.msgs = append(l.msgs, ipv4.Message{Buffers: [][]byte{b}, Addr: l.peer})
	}
	defer clear(l.msgs)
	for msgs := l.msgs; len(msgs) > 0; {
		n, err := ipv4.NewPacketConn(udp).WriteBatch(msgs, 0)
		if err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func (l *udpLink) DatagramSizes() (int, int) { return l.safe, l.max }

// readLoop delivers every datagram pc receives to ep until pc is closed,
// those of one read together, as a real link's reader would.
func readLoop(pc net.PacketConn, ep *Endpoint, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		udp, ok := pc.(*net.UDPConn)
		if !ok {
			buf := make([]byte, 65536)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				ep.DeliverDatagram(buf[:n])
			}
		}
		bc := ipv4.NewPacketConn(udp)
		msgs := make([]ipv4.Message, 16)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 65536)}
		}
		bufs := make([][]byte, 0, len(msgs))
		for {
			n, err := bc.ReadBatch(msgs, 0)
			if err != nil {
				return
			}
			bufs = bufs[:0]
			for _, m := range msgs[:n] {
				bufs = append(bufs, m.Buffers[0][:m.N])
			}
			ep.DeliverDatagrams(bufs)
		}
	}()
}

// pairOpts describes a test pair of endpoints.
type pairOpts struct {
	netA, netB *netem.Config // impairments on each side's socket; nil for none
	cfgA, cfgB Config
	safe, max  int // datagram sizes both links report; default 1200 and 1472
	// wrapB, when set, gives b's endpoint a Link of its own around its udpLink.
	wrapB func(*udpLink) Link
}

type pair struct {
	a, b     *Endpoint
	pcA, pcB net.PacketConn
}

func listenUDP(t testing.TB) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	if u, ok := pc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(4 << 20)
		_ = u.SetWriteBuffer(4 << 20)
	}
	return pc
}

// newPair makes two endpoints talking over loopback UDP, each through netem
// when asked; cleanup closes everything and waits for the read loops.
func newPair(t testing.TB, o pairOpts) *pair {
	t.Helper()
	if o.safe == 0 {
		o.safe, o.max = 1200, 1472
	}
	var pcA, pcB net.PacketConn = listenUDP(t), listenUDP(t)
	if o.netA != nil {
		pcA = netem.Wrap(pcA, *o.netA)
	}
	if o.netB != nil {
		pcB = netem.Wrap(pcB, *o.netB)
	}
	p := &pair{pcA: pcA, pcB: pcB}
	p.a = NewEndpoint(&udpLink{pc: pcA, peer: pcB.LocalAddr(), safe: o.safe, max: o.max}, o.cfgA)
	var linkB Link = &udpLink{pc: pcB, peer: pcA.LocalAddr(), safe: o.safe, max: o.max}
	if o.wrapB != nil {
		linkB = o.wrapB(linkB.(*udpLink))
	}
	p.b = NewEndpoint(linkB, o.cfgB)
	var wg sync.WaitGroup
	readLoop(pcA, p.a, &wg)
	readLoop(pcB, p.b, &wg)
	t.Cleanup(func() {
		p.a.Close()
		p.b.Close()
		pcA.Close()
		pcB.Close()
		wg.Wait()
	})
	return p
}

// connect dials from a and accepts on b.
func (p *pair) connect(t testing.TB) (ca, cb *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := p.b.Accept(ctx)
		ch <- res{c, err}
	}()
	ca, err := p.a.Dial(ctx)
	require.NoError(t, err, "dial")
	r := <-ch
	require.NoError(t, r.err, "accept")
	return ca, r.c
}
