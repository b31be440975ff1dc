package utp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Each stream is one uTP connection carrying frames: type(1) length(2, big endian) payload(length).
//
//	data     payload bytes; never more than the receiver's remaining window
//	window   4-byte increment of the sender's credit; each side's first frame grants its whole window (the
//	         acceptor reads the dialler's as the last step of the handshake)
//	ping     empty; sent on a stream idle for half of Config.KeepaliveInterval, so the library's 120 s idle timer
//	         never fires and a connection the peer forgot is reset
//	fin      end of the sender's data (CloseWrite or Close)
//	fin ack  the fin, and so all data before it, reached the receiver's stream buffer
//	close    the sender is gone: it reads nothing more and acknowledges nothing more
//
// A goroutine always reads the uTP connection into the stream's own buffer, which the window keeps bounded, so the
// uTP receive window never closes (the library kills a sender probing a zero window for 15 s). Close sends fin,
// waits (up to Config.CloseTimeout) for fin ack, sends close and only then closes the uTP connection: the data is
// known delivered without relying on the library's single, unretransmitted FIN.
const (
	frameHeader = 3
	// utpPacketPayload is what the library puts in one packet; bulk frames fill four packets exactly.
	utpPacketPayload = 1384
	maxFrame         = 4 * utpPacketPayload
	maxFramePayload  = maxFrame - frameHeader
)

const (
	frameData byte = iota
	frameWindow
	framePing
	frameFin
	frameFinAck
	frameClose
)

// stream is the net.Conn returned by OpenStream and AcceptStream. It also has CloseWrite, as *net.TCPConn does.
type stream struct {
	p      *Path
	c      net.Conn
	window int
	ctx    context.Context // ends when the stream does; bounds pacing waits
	cancel context.CancelFunc

	readNotify  chan struct{}
	writeNotify chan struct{}
	ctrlKick    chan struct{}
	rdl, wdl    deadline

	wmu      sync.Mutex // serialises frames on c
	wbuf     [maxFrame]byte
	finSent  bool // guarded by wmu
	lastSent atomic.Int64

	mu            sync.Mutex
	buf           []byte // received, unread: buf[r:w]
	r, w          int
	consumed      int // read since the last window frame
	credit        int // bytes the peer still accepts
	readEOF       bool
	peerGone      bool
	finAcked      bool
	wroteFin      bool
	closed        bool
	pendingFinAck bool
	err           error
}

var _ net.Conn = (*stream)(nil)

// newStream wraps a uTP connection whose handshake is done. Its first frame, written here before anything else can be, grants
// the peer our whole window; credit is what the peer already granted us (the acceptor reads the dialler's window
// frame during the handshake).
func (p *Path) newStream(c net.Conn, credit int) (*stream, error) {
	ctx, cancel := context.WithCancel(p.ctx)
	s := &stream{
		p:           p,
		c:           c,
		window:      p.cfg.StreamWindow,
		ctx:         ctx,
		cancel:      cancel,
		readNotify:  make(chan struct{}, 1),
		writeNotify: make(chan struct{}, 1),
		ctrlKick:    make(chan struct{}, 1),
		rdl:         makeDeadline(),
		wdl:         makeDeadline(),
		credit:      credit,
	}
	s.lastSent.Store(time.Now().UnixNano())
	if err := p.reg.add(s); err != nil {
		cancel()
		return nil, err
	}
	if err := s.writeFrame(frameWindow, binary.BigEndian.AppendUint32(nil, uint32(s.window))); err != nil {
		return nil, err
	}
	go s.readLoop()
	go s.ctrlLoop()
	return s, nil
}

func (s *stream) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *stream) wakeAll() {
	s.kick(s.readNotify)
	s.kick(s.writeNotify)
}

func (s *stream) readLoop() {
	br := bufio.NewReaderSize(s.c, 64<<10)
	var hdr [frameHeader]byte
	payload := make([]byte, maxFramePayload)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			s.readFailed(err)
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[1:]))
		if n > maxFramePayload {
			s.fail(fmt.Errorf("%w: frame of %d bytes", ErrProtocol, n))
			return
		}
		if _, err := io.ReadFull(br, payload[:n]); err != nil {
			s.readFailed(err)
			return
		}
		if err := s.handleFrame(hdr[0], payload[:n]); err != nil {
			s.fail(err)
			return
		}
	}
}

func (s *stream) handleFrame(typ byte, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch typ {
	case frameData:
		if s.readEOF {
			return fmt.Errorf("%w: data after fin", ErrProtocol)
		}
		if s.w-s.r+len(payload) > s.window {
			return fmt.Errorf("%w: peer overran the %d-byte window", ErrProtocol, s.window)
		}
		if s.closed {
			// Nobody will read it; give the credit straight back so the peer is not stuck before our close frame.
			s.consumed += len(payload)
			s.kick(s.ctrlKick)
			return nil
		}
		s.appendLocked(payload)
		s.kick(s.readNotify)
	case frameWindow:
		if len(payload) != 4 {
			return fmt.Errorf("%w: window frame of %d bytes", ErrProtocol, len(payload))
		}
		s.credit += int(binary.BigEndian.Uint32(payload))
		if s.credit > 1<<30 {
			return fmt.Errorf("%w: window beyond 1 GiB", ErrProtocol)
		}
		s.kick(s.writeNotify)
	case framePing:
	case frameFin:
		s.readEOF = true
		s.pendingFinAck = true
		s.kick(s.ctrlKick)
		s.kick(s.readNotify)
	case frameFinAck:
		s.finAcked = true
		s.kick(s.writeNotify)
	case frameClose:
		s.peerGone, s.readEOF = true, true
		s.wakeAll()
	default:
		return fmt.Errorf("%w: unknown frame type %d", ErrProtocol, typ)
	}
	return nil
}

// appendLocked stores payload in buf, which grows as needed up to the window.
func (s *stream) appendLocked(payload []byte) {
	if s.w+len(payload) > len(s.buf) {
		n := s.w - s.r
		if need := n + len(payload); need > len(s.buf)/2 {
			nb := make([]byte, min(s.window, max(64<<10, 2*need)))
			copy(nb, s.buf[s.r:s.w])
			s.buf = nb
		} else {
			copy(s.buf, s.buf[s.r:s.w])
		}
		s.r, s.w = 0, n
	}
	s.w += copy(s.buf[s.w:], payload)
}

// readFailed handles the end of the uTP connection under the reader.
func (s *stream) readFailed(err error) {
	s.mu.Lock()
	closed, eof := s.closed, s.readEOF
	s.mu.Unlock()
	switch {
	case closed:
		return // our own Close
	case s.p.Err() != nil:
		s.fail(s.p.Err())
	case errors.Is(err, io.EOF) && eof:
		s.mu.Lock()
		s.peerGone = true
		s.mu.Unlock()
		s.wakeAll()
	case errors.Is(err, io.EOF):
		s.fail(fmt.Errorf("%w: connection ended without end of stream", ErrStreamClosed))
	default:
		s.fail(fmt.Errorf("utp: stream connection: %w", err))
	}
}

// fail ends the stream with err (the first error wins) and releases its uTP connection.
func (s *stream) fail(err error) {
	s.mu.Lock()
	first := s.err == nil
	if first {
		s.err = err
	}
	// After our own Close, a control frame that can no longer be sent (the path closing right behind the stream) is
	// no failure worth a log line.
	quiet := s.closed
	s.mu.Unlock()
	if first && !quiet {
		s.p.log.Debug("utp: stream failed", "remote", s.p.RemoteAddr(), "err", err)
	}
	s.wakeAll()
	s.release()
}

func (s *stream) release() {
	s.c.Close()
	s.cancel()
	s.p.reg.remove(s)
}

func (s *stream) ctrlLoop() {
	ka := s.p.cfg.KeepaliveInterval / 2
	ticker := time.NewTicker(ka)
	defer ticker.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-ticker.C:
			if time.Since(time.Unix(0, s.lastSent.Load())) >= ka {
				s.writeFrame(framePing, nil)
			}
			continue
		case <-s.ctrlKick:
		}
		s.mu.Lock()
		inc := 0
		if s.consumed >= s.window/4 {
			inc, s.consumed = s.consumed, 0
		}
		finAck := s.pendingFinAck
		s.pendingFinAck = false
		s.mu.Unlock()
		if inc > 0 {
			s.writeFrame(frameWindow, binary.BigEndian.AppendUint32(nil, uint32(inc)))
		}
		if finAck {
			s.writeFrame(frameFinAck, nil)
		}
	}
}

// writeFrame writes one frame; a failure ends the stream.
func (s *stream) writeFrame(typ byte, payload []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.finSent && typ == frameData {
		return fmt.Errorf("utp: write after CloseWrite: %w", net.ErrClosed)
	}
	b := s.wbuf[:frameHeader+len(payload)]
	b[0] = typ
	binary.BigEndian.PutUint16(b[1:3], uint16(len(payload)))
	copy(b[frameHeader:], payload)
	if _, err := s.c.Write(b); err != nil {
		err = s.connErr(err)
		s.fail(err)
		return err
	}
	if typ == frameFin {
		s.finSent = true
	}
	s.lastSent.Store(time.Now().UnixNano())
	return nil
}

// connErr explains an error from the uTP connection: the path's or stream's own error if there is one.
func (s *stream) connErr(err error) error {
	if perr := s.p.Err(); perr != nil {
		return perr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return net.ErrClosed
	}
	return fmt.Errorf("utp: stream connection: %w", err)
}

// Read reads what the peer wrote; io.EOF after its CloseWrite or Close.
func (s *stream) Read(b []byte) (int, error) {
	s.mu.Lock()
	for {
		switch {
		case s.rdl.exceeded():
			s.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		case s.closed:
			s.mu.Unlock()
			return 0, net.ErrClosed
		case s.w > s.r:
			n := copy(b, s.buf[s.r:s.w])
			s.r += n
			s.consumed += n
			update := s.consumed >= s.window/4
			s.mu.Unlock()
			if update {
				s.kick(s.ctrlKick)
			}
			return n, nil
		case s.readEOF:
			s.mu.Unlock()
			return 0, io.EOF
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return 0, err
		case len(b) == 0:
			s.mu.Unlock()
			return 0, nil
		}
		s.mu.Unlock()
		select {
		case <-s.readNotify:
		case <-s.rdl.wait():
		}
		s.mu.Lock()
	}
}

// Write sends b in frames of up to four full uTP packets, each within the peer's window and paced by the path's
// congestion controller.
func (s *stream) Write(b []byte) (int, error) {
	ctx := s.ctx
	if dl, ok := s.wdl.deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	n := 0
	for len(b) > 0 {
		chunk, err := s.takeCredit(min(len(b), maxFramePayload))
		if err != nil {
			return n, err
		}
		if err := s.p.cc.wait(ctx, frameHeader+chunk); err != nil {
			s.mu.Lock()
			s.credit += chunk
			s.mu.Unlock()
			if s.wdl.exceeded() || errors.Is(err, context.DeadlineExceeded) {
				return n, os.ErrDeadlineExceeded
			}
			return n, s.connErr(err)
		}
		if err := s.writeFrame(frameData, b[:chunk]); err != nil {
			return n, err
		}
		s.p.noteWrite()
		n += chunk
		b = b[chunk:]
	}
	return n, nil
}

// takeCredit waits until the peer's window allows at least one byte, and takes up to want.
func (s *stream) takeCredit(want int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.wdl.exceeded():
			return 0, os.ErrDeadlineExceeded
		case s.closed:
			return 0, net.ErrClosed
		case s.wroteFin:
			return 0, fmt.Errorf("utp: write after CloseWrite: %w", net.ErrClosed)
		case s.err != nil:
			return 0, s.err
		case s.peerGone:
			return 0, ErrStreamClosed
		case s.credit > 0:
			n := min(want, s.credit)
			s.credit -= n
			return n, nil
		}
		s.mu.Unlock()
		select {
		case <-s.writeNotify:
		case <-s.wdl.wait():
		}
		s.mu.Lock()
	}
}

// CloseWrite ends our direction of the stream: the peer reads io.EOF once it has read everything; we may still read.
func (s *stream) CloseWrite() error {
	s.mu.Lock()
	if s.wroteFin || s.closed || s.err != nil {
		s.mu.Unlock()
		return nil
	}
	s.wroteFin = true
	s.mu.Unlock()
	s.kick(s.writeNotify)
	return s.writeFrame(frameFin, nil)
}

// Close ends the stream gracefully: everything written is delivered into the peer's stream buffer (or
// Config.CloseTimeout passes) before the uTP connection closes. Unread data is discarded.
func (s *stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.consumed += s.w - s.r
	s.r, s.w, s.buf = 0, 0, nil
	graceful := s.err == nil && !s.peerGone
	sendFin := !s.wroteFin
	s.wroteFin = true
	s.mu.Unlock()
	s.wakeAll()
	s.kick(s.ctrlKick)
	if graceful {
		if !sendFin || s.writeFrame(frameFin, nil) == nil {
			s.waitFinAck()
			s.writeFrame(frameClose, nil)
		}
	}
	s.release()
	return nil
}

func (s *stream) waitFinAck() {
	timer := time.NewTimer(s.p.cfg.CloseTimeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		done := s.finAcked || s.peerGone || s.err != nil
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-s.writeNotify:
		case <-timer.C:
			s.p.log.Debug("utp: stream close: no fin ack in time", "timeout", s.p.cfg.CloseTimeout)
			return
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *stream) LocalAddr() net.Addr { return s.p.t.local }

// RemoteAddr is the peer's current address on the path (it changes when the path moves).
func (s *stream) RemoteAddr() net.Addr { return s.p.udpAddr() }

func (s *stream) SetDeadline(t time.Time) error {
	s.rdl.set(t)
	s.wdl.set(t)
	return nil
}

func (s *stream) SetReadDeadline(t time.Time) error  { s.rdl.set(t); return nil }
func (s *stream) SetWriteDeadline(t time.Time) error { s.wdl.set(t); return nil }

// deadline is a settable point in time with a channel that is closed once it passes.
type deadline struct {
	mu     *sync.Mutex
	at     time.Time
	timer  *time.Timer
	passed chan struct{}
}

func makeDeadline() deadline { return deadline{mu: new(sync.Mutex), passed: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.passed // the timer fired: its close has happened or is about to
	}
	d.timer = nil
	d.at = t
	closed := isClosed(d.passed)
	if t.IsZero() || time.Until(t) > 0 {
		if closed {
			d.passed = make(chan struct{})
		}
		if !t.IsZero() {
			ch := d.passed
			d.timer = time.AfterFunc(time.Until(t), func() { close(ch) })
		}
		return
	}
	if !closed {
		close(d.passed)
	}
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed
}

func (d *deadline) exceeded() bool { return isClosed(d.wait()) }

func (d *deadline) deadline() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.at, !d.at.IsZero()
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
