package utp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Every uTP connection starts with a handshake at our layer, so a connection the library accepted (perhaps from a
// spoofed source address) carries a stream only if it proves knowledge of the session key:
//
//	hello  (dialler -> acceptor, 41 bytes): instance(8) counter(8) purpose(1) request ID(8)
//	                                         MAC(stream key, "hello" || those 25 bytes)(16)
//	ack    (acceptor -> dialler, 16 bytes): MAC(stream key, "ack" || hello)
//	window (dialler -> acceptor): the dialler's first stream frame, sent only once the ack arrived
//
// The counter comes from the dialler's control counter and goes through the same replay window, so a recorded
// hello cannot be replayed. Purpose says who asked for the stream: the dialler's own OpenStream, or the
// non-dialler's OpenStream (request ID from its open-request control packet). The acceptor delivers the stream only
// after the window frame, so a dialler that gave up waiting for the ack (the library's timers stretch to seconds
// under loss) can safely dial again: the abandoned connection never became a stream on either side.
const (
	helloSize     = 41
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

// AcceptStream returns the next stream the peer opened.
func (p *Path) AcceptStream(ctx context.Context) (net.Conn, error) {
	select {
	case s := <-p.accept:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, p.Err()
	}
}

// requestStream is OpenStream on the non-dialler: it repeats an open request until the dialler's connection for it
// arrives.
func (p *Path) requestStream(ctx context.Context) (*stream, error) {
	var idb [8]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint64(idb[:])
	ch := make(chan *stream, 1)
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return nil, p.err
	}
	p.openWait[id] = ch
	remote := p.remoteUDP
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.openWait, id)
		p.mu.Unlock()
		select {
		case s := <-ch: // arrived as we gave up
			s.fail(fmt.Errorf("utp: open stream: %w", ctx.Err()))
		default:
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case s := <-ch:
			return s, nil
		case <-timer.C:
			p.send(kindOpenRequest, idb[:], remote, false)
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
	p.mu.Lock()
	if _, seen := p.openSeen[id]; seen {
		p.mu.Unlock()
		return
	}
	if len(p.openSeen) > 4096 {
		// Retransmitted requests arrive within seconds; old IDs need not be remembered for ever.
		clear(p.openSeen)
	}
	p.openSeen[id] = struct{}{}
	p.mu.Unlock()
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

// deliver queues a peer-opened stream for AcceptStream, refusing it when the backlog is full.
func (p *Path) deliver(s *stream) {
	select {
	case p.accept <- s:
	default:
		p.log.Warn("utp: accept backlog full, refusing a stream", "backlog", p.cfg.AcceptBacklog)
		s.fail(errors.New("utp: accept backlog full"))
	}
}

// dial (dialler only) dials a uTP connection to the peer and runs the hello handshake, retrying until ctx ends.
func (p *Path) dial(ctx context.Context, purpose byte, id uint64) (*stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	select {
	case p.t.dialSem <- struct{}{}:
		defer func() { <-p.t.dialSem }()
	case <-ctx.Done():
		return nil, p.dialErr(ctx, nil)
	}
	remote := p.RemoteAddr().String()
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
		c, err := p.t.sock.DialContext(actx, "", remote)
		acancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, p.dialErr(ctx, err)
			}
			p.log.Debug("utp: dial attempt failed, retrying", "remote", remote, "attempt", attempt, "err", err)
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
		p.log.Debug("utp: stream handshake failed, dialling again", "remote", remote, "attempt", attempt, "err", err)
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

func (p *Path) helloMAC(dst, hello []byte) []byte {
	return newMacer(p.keys.stream).sum(dst, []byte("hello"), hello)
}

func (p *Path) ackMAC(hello []byte) []byte {
	return newMacer(p.keys.stream).sum(nil, []byte("ack"), hello)
}

func (p *Path) clientHandshake(ctx context.Context, c net.Conn, purpose byte, id uint64) (*stream, error) {
	hello := binary.BigEndian.AppendUint64(make([]byte, 0, helloSize), p.instance)
	hello = binary.BigEndian.AppendUint64(hello, p.nextCounter())
	hello = append(hello, purpose)
	hello = binary.BigEndian.AppendUint64(hello, id)
	hello = p.helloMAC(hello, hello)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(hello); err != nil {
		return nil, err
	}
	ack := make([]byte, macSize)
	if _, err := io.ReadFull(c, ack); err != nil {
		return nil, fmt.Errorf("reading the stream handshake answer: %w", err)
	}
	if !hmac.Equal(ack, p.ackMAC(hello)) {
		return nil, fmt.Errorf("%w: stream handshake answer not authenticated", ErrProtocol)
	}
	c.SetDeadline(time.Time{})
	return p.newStream(c, 0)
}

// acceptHandshake authenticates a connection the library accepted from the peer's address and routes the stream.
func (p *Path) acceptHandshake(c net.Conn) {
	fail := func(why string, args ...any) {
		p.log.Debug("utp: refusing a uTP connection: "+why, append([]any{"remote", c.RemoteAddr()}, args...)...)
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
	body := hello[:helloSize-macSize]
	if !hmac.Equal(p.helloMAC(nil, body), hello[helloSize-macSize:]) {
		fail("hello not authenticated")
		return
	}
	instance, counter := binary.BigEndian.Uint64(body[0:8]), binary.BigEndian.Uint64(body[8:16])
	purpose, id := body[16], binary.BigEndian.Uint64(body[17:25])
	p.mu.Lock()
	fresh := p.locked && instance == p.peerInstance && p.window.accept(counter)
	p.mu.Unlock()
	if !fresh {
		fail("hello replayed or from another session")
		return
	}
	if _, err := c.Write(p.ackMAC(hello)); err != nil {
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
		// Sent under the lock (ch has room for one) so requestStream, which removes ch under the lock before
		// draining it, never misses a stream.
		p.mu.Lock()
		ch := p.openWait[id]
		delete(p.openWait, id)
		if ch != nil {
			ch <- s
		}
		p.mu.Unlock()
		if ch == nil {
			s.fail(errors.New("utp: stream for a request no longer waiting"))
		}
	default:
		s.fail(fmt.Errorf("%w: unknown stream purpose %d", ErrProtocol, purpose))
	}
}
