package utp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Every uTP connection starts with a short handshake at our layer. It needs no MAC (every datagram of the path is
// sealed and replay-checked, so only the peer can open a connection); it says who asked for the stream and makes a
// redial safe:
//
//	hello  (dialler -> acceptor, 9 bytes): purpose(1) request ID(8)
//	ack    (acceptor -> dialler, 1 byte)
//	window (dialler -> acceptor): the dialler's first stream frame, sent only once the ack arrived
//
// Purpose says who asked for the stream: the dialler's own OpenStream, or the non-dialler's OpenStream (request ID
// from its open-request control packet). The acceptor delivers the stream only after the window frame, so a
// dialler that gave up waiting for the ack (the library's timers stretch to seconds under loss) can safely dial
// again: the abandoned connection never became a stream on either side.
const (
	helloSize     = 9
	helloAck      = 0x06
	purposeOpen   = 1 // the dialler opened it: the acceptor delivers it to AcceptStream
	purposeAnswer = 2 // the dialler opened it for the acceptor's request: delivered to that OpenStream
)

// maxPendingDials keeps the library's SYN backlog (50) from overflowing at the peer.
const maxPendingDials = 32

// OpenStream opens a new stream to the peer. On the dialler it dials a uTP connection (retrying each
// Config.DialTimeout while ctx lasts); on the other side it asks the dialler, with a control packet, to dial one for
// it. Without a ctx deadline it gives up after Config.OpenTimeout.
//
// The stream is a net.Conn with working deadlines. It also has CloseWrite() error, as *net.TCPConn does: the peer
// then reads io.EOF while this side can still read. Close is graceful: it returns once the peer's stream holds
// everything written (or after Config.CloseTimeout). When the path dies, reads and writes fail with an error
// wrapping ErrPathDead (ErrPathClosed when it was closed).
func (p *Path) OpenStream(ctx context.Context) (net.Conn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.OpenTimeout)
		defer cancel()
	}
	if p.dialer {
		s, err := p.dial(ctx, purposeOpen, 0)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return p.requestStream(ctx)
}

// requestStream is OpenStream on the non-dialler: it repeats an open request until the dialler's connection for it
// arrives.
func (p *Path) requestStream(ctx context.Context) (*stream, error) {
	var idb [8]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint64(idb[:])
	ch, err := p.reg.waitOpen(id)
	if err != nil {
		return nil, err
	}
	defer func() {
		if s := p.reg.stopWait(id, ch); s != nil { // arrived as we gave up
			s.fail(fmt.Errorf("utp: open stream: %w", ctx.Err()))
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case s := <-ch:
			return s, nil
		case <-timer.C:
			if r := p.loadRoute(); r != nil {
				p.sendCtrl(r, kindOpenRequest, idb[:], false)
			}
			timer.Reset(max(4*p.RTT(), 250*time.Millisecond))
		case <-ctx.Done():
			return nil, fmt.Errorf("utp: open stream (asked the dialler): %w", ctx.Err())
		case <-p.done:
			return nil, p.Err()
		}
	}
}

// serveOpenRequest (dialler, read goroutine) dials the stream the peer asked for, once per request ID.
func (p *Path) serveOpenRequest(id uint64) {
	if !p.reg.firstRequest(id) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.OpenTimeout)
		defer cancel()
		s, err := p.dial(ctx, purposeAnswer, id)
		if err != nil {
			p.log.Debug("utp: dialling the stream the peer asked for", "err", err)
			return
		}
		p.deliver(s)
	}()
}

// dial (dialler only) dials a uTP connection to the peer and runs the hello handshake, retrying until ctx ends.
func (p *Path) dial(ctx context.Context, purpose byte, id uint64) (*stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	select {
	case p.dialSem <- struct{}{}:
		defer func() { <-p.dialSem }()
	case <-ctx.Done():
		return nil, p.dialErr(ctx, nil)
	}
	remote := p.eng.peerAddr()
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
		c, err := p.eng.sock.DialContext(actx, "", remote)
		acancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, p.dialErr(ctx, err)
			}
			p.log.Debug("utp: dial attempt failed, retrying", "attempt", attempt, "err", err)
			continue
		}
		// The handshake may wait for the library's slow retransmissions, up to the whole of ctx; a failure (the
		// library gives up on an unacknowledged packet after 15 s) leaves nothing behind at the acceptor, so retry.
		s, err := p.clientHandshake(ctx, c, purpose, id)
		if err == nil {
			return s, nil
		}
		c.Close()
		if ctx.Err() != nil || errors.Is(err, ErrProtocol) {
			return nil, p.dialErr(ctx, err)
		}
		p.log.Debug("utp: stream handshake failed, dialling again", "attempt", attempt, "err", err)
	}
}

func (p *Path) dialErr(ctx context.Context, last error) error {
	if err := p.Err(); err != nil {
		return err
	}
	if last != nil {
		return fmt.Errorf("utp: open stream to %v: %w (last attempt: %v)", p.RemoteAddr(), ctx.Err(), last)
	}
	return fmt.Errorf("utp: open stream to %v: %w", p.RemoteAddr(), ctx.Err())
}

func (p *Path) clientHandshake(ctx context.Context, c net.Conn, purpose byte, id uint64) (*stream, error) {
	hello := binary.BigEndian.AppendUint64([]byte{purpose}, id)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(hello); err != nil {
		return nil, err
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return nil, fmt.Errorf("reading the stream handshake answer: %w", err)
	}
	if ack[0] != helloAck {
		return nil, fmt.Errorf("%w: stream handshake answer %#x", ErrProtocol, ack[0])
	}
	c.SetDeadline(time.Time{})
	return p.newStream(c, 0)
}

// acceptLoop takes every uTP connection the path's engine accepts and runs its handshake in its own goroutine.
func (p *Path) acceptLoop() {
	for {
		c, err := p.eng.sock.Accept()
		if err != nil {
			return // the engine was closed with the path
		}
		go p.acceptHandshake(c)
	}
}

// acceptHandshake reads the hello of a connection the peer opened and routes the stream.
func (p *Path) acceptHandshake(c net.Conn) {
	fail := func(why string, args ...any) {
		p.log.Debug("utp: refusing a uTP connection: "+why, args...)
		c.Close()
	}
	if p.dialer {
		fail("we are the dialler")
		return
	}
	// As long as the dialler waits for our answer: under heavy loss the library's retransmissions take seconds.
	c.SetDeadline(time.Now().Add(p.cfg.OpenTimeout))
	hello := make([]byte, helloSize)
	if _, err := io.ReadFull(c, hello); err != nil {
		fail("no hello", "err", err)
		return
	}
	purpose, id := hello[0], binary.BigEndian.Uint64(hello[1:])
	if _, err := c.Write([]byte{helloAck}); err != nil {
		fail("writing the answer", "err", err)
		return
	}
	var win [frameHeader + 4]byte
	if _, err := io.ReadFull(c, win[:]); err != nil {
		fail("no window frame after the answer (the dialler gave up)", "err", err)
		return
	}
	if win[0] != frameWindow || binary.BigEndian.Uint16(win[1:3]) != 4 {
		fail("first frame is not a window frame")
		return
	}
	c.SetDeadline(time.Time{})
	s, err := p.newStream(c, int(min(binary.BigEndian.Uint32(win[3:]), 1<<30)))
	if err != nil {
		c.Close()
		return
	}
	switch purpose {
	case purposeOpen:
		p.deliver(s)
	case purposeAnswer:
		if !p.reg.answer(id, s) {
			s.fail(errors.New("utp: stream for a request no longer waiting"))
		}
	default:
		s.fail(fmt.Errorf("%w: unknown stream purpose %d", ErrProtocol, purpose))
	}
}
