package netem

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Filtering selects which inbound packets a [Conn]'s NAT-like filter lets through.
type Filtering int

const (
	// FilterNone lets every inbound packet through.
	FilterNone Filtering = iota
	// FilterAddress lets through packets from IP addresses the Conn has sent to (an address-restricted NAT).
	FilterAddress
	// FilterAddressPort lets through packets from IP:port pairs the Conn has sent to (a port-restricted NAT).
	FilterAddressPort
)

func (f Filtering) String() string {
	switch f {
	case FilterNone:
		return "none"
	case FilterAddress:
		return "address"
	case FilterAddressPort:
		return "address-port"
	}
	return fmt.Sprintf("Filtering(%d)", int(f))
}

// Config configures a [Conn].
type Config struct {
	Out Impairment // applied to packets written with WriteTo
	In  Impairment // applied to packets before ReadFrom returns them
	// Filter drops inbound packets from peers the Conn has not sent to, as a NAT would. Counted in Conn.Filtered.
	Filter Filtering
	// Seed makes the random impairments repeatable; the two directions get different streams from it.
	Seed uint64
	// ReadQueue is how many inbound packets wait for ReadFrom, like a socket's receive buffer; overflow is dropped
	// and counted in Conn.ReadQueueDrops. Default 4096.
	ReadQueue int
}

// Conn is a net.PacketConn that impairs the packets written to and read from an inner PacketConn. WriteTo never
// blocks. Closing the Conn closes the inner one.
type Conn struct {
	inner   net.PacketConn
	out, in *Link
	filter  Filtering
	queue   chan Packet

	mu            sync.Mutex
	sentTo        map[string]struct{}
	readDeadline  time.Time
	deadlineMoved chan struct{} // closed and replaced when the read deadline changes

	closeOnce  sync.Once
	closed     chan struct{}
	readerDone chan struct{}
	broken     chan struct{} // closed when reading the inner PacketConn failed with readErr
	readErr    error

	filtered, queueDrops atomic.Int64
}

// Wrap returns a Conn impairing traffic through pc as cfg says. It starts a goroutine reading pc; Close stops it.
func Wrap(pc net.PacketConn, cfg Config) *Conn {
	if cfg.ReadQueue <= 0 {
		cfg.ReadQueue = 4096
	}
	c := &Conn{
		inner:         pc,
		filter:        cfg.Filter,
		queue:         make(chan Packet, cfg.ReadQueue),
		sentTo:        make(map[string]struct{}),
		deadlineMoved: make(chan struct{}),
		closed:        make(chan struct{}),
		readerDone:    make(chan struct{}),
		broken:        make(chan struct{}),
	}
	c.out = NewLink(cfg.Out, cfg.Seed, func(p Packet) {
		_, _ = pc.WriteTo(p.Data, p.Addr) // a real network loses packets silently too
	})
	c.in = NewLink(cfg.In, cfg.Seed^0x9e3779b97f4a7c15, func(p Packet) {
		select {
		case c.queue <- p:
		default:
			c.queueDrops.Add(1)
		}
	})
	go c.readLoop()
	return c
}

func (c *Conn) readLoop() {
	defer close(c.readerDone)
	buf := make([]byte, 65536)
	for {
		n, addr, err := c.inner.ReadFrom(buf)
		if err != nil {
			select {
			case <-c.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			c.readErr = err // published by closing broken
			close(c.broken)
			return
		}
		if !c.admitted(addr) {
			c.filtered.Add(1)
			continue
		}
		c.in.Send(Packet{Data: buf[:n], Addr: addr})
	}
}

// filterKey returns the key the NAT filter remembers addr under.
func (c *Conn) filterKey(addr net.Addr) string {
	if c.filter == FilterAddress {
		if u, ok := addr.(*net.UDPAddr); ok {
			return u.IP.String()
		}
	}
	return addr.String()
}

func (c *Conn) admitted(from net.Addr) bool {
	if c.filter == FilterNone {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.sentTo[c.filterKey(from)]
	return ok
}

// ReadFrom returns the next inbound packet that survived the impairments. It honours the read deadline and
// returns net.ErrClosed once the Conn is closed.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		deadline, moved := c.readDeadline, c.deadlineMoved
		c.mu.Unlock()
		var timer *time.Timer
		var expired <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, nil, c.opError("read", os.ErrDeadlineExceeded)
			}
			timer = time.NewTimer(d)
			expired = timer.C
		}
		var (
			n    int
			addr net.Addr
			err  error
			done = true
		)
		select {
		case <-c.closed:
			err = c.opError("read", net.ErrClosed)
		case <-c.broken:
			err = c.readErr
		case pkt := <-c.queue:
			n, addr = copy(p, pkt.Data), pkt.Addr
		case <-expired:
			err = c.opError("read", os.ErrDeadlineExceeded)
		case <-moved:
			done = false
		}
		if timer != nil {
			timer.Stop()
		}
		if done {
			return n, addr, err
		}
	}
}

// WriteTo hands p to the outbound link and returns at once; delivery happens later, if at all.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, c.opError("write", net.ErrClosed)
	default:
	}
	if c.filter != FilterNone {
		c.mu.Lock()
		c.sentTo[c.filterKey(addr)] = struct{}{}
		c.mu.Unlock()
	}
	c.out.Send(Packet{Data: p, Addr: addr})
	return len(p), nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Addr: c.inner.LocalAddr(), Err: err}
}

// Close stops both links and closes the inner PacketConn.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.inner.Close()
		<-c.readerDone
		c.out.Close()
		c.in.Close()
	})
	return err
}

// LocalAddr returns the inner PacketConn's address.
func (c *Conn) LocalAddr() net.Addr { return c.inner.LocalAddr() }

// SetDeadline sets the read deadline; writes never block, so a write deadline has nothing to bound.
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline bounds ReadFrom, including calls already blocked.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	close(c.deadlineMoved)
	c.deadlineMoved = make(chan struct{})
	return nil
}

// SetWriteDeadline is accepted and ignored: WriteTo never blocks.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer passes through to the inner PacketConn when it supports it.
func (c *Conn) SetReadBuffer(bytes int) error {
	if s, ok := c.inner.(interface{ SetReadBuffer(int) error }); ok {
		return s.SetReadBuffer(bytes)
	}
	return errors.ErrUnsupported
}

// SetWriteBuffer passes through to the inner PacketConn when it supports it.
func (c *Conn) SetWriteBuffer(bytes int) error {
	if s, ok := c.inner.(interface{ SetWriteBuffer(int) error }); ok {
		return s.SetWriteBuffer(bytes)
	}
	return errors.ErrUnsupported
}

// SyscallConn exposes the inner socket (to read its buffer sizes, say) when the inner PacketConn is one.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if s, ok := c.inner.(syscall.Conn); ok {
		return s.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// Outage drops everything in both directions for d, starting now.
func (c *Conn) Outage(d time.Duration) {
	c.out.Outage(d)
	c.in.Outage(d)
}

// Backlog returns the bytes waiting in the outbound bottleneck queue now.
func (c *Conn) Backlog() int { return c.out.Backlog() }

// OutStats returns what the outbound link did.
func (c *Conn) OutStats() Stats { return c.out.Stats() }

// InStats returns what the inbound link did.
func (c *Conn) InStats() Stats { return c.in.Stats() }

// Filtered returns how many inbound packets the NAT-like filter dropped.
func (c *Conn) Filtered() int64 { return c.filtered.Load() }

// ReadQueueDrops returns how many inbound packets were dropped because ReadFrom fell behind.
func (c *Conn) ReadQueueDrops() int64 { return c.queueDrops.Load() }
