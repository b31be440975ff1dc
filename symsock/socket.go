package symsock

import (
	"io"
	"net"
	"sync"
	"time"
)

type role uint8

const (
	roleNone role = iota
	roleServer
	roleClient
)

// Method classes queued by a client for response framing.
const (
	methodOther uint8 = iota
	methodHead
	methodConnect
)

// Socket is a symmetric HTTP/1.1 socket over one net.Conn. It becomes a server with its first ReadRequest and a
// client with its first WriteRequest, WriteRequestMetadata or ReadResponse; a failed read (other than
// ErrBufferExhausted) makes it undecided again.
//
// One goroutine may read (ReadRequest, ReadResponse, ReadSome, a BodyReader) while another writes; a second
// concurrent operation of the same direction fails with ErrOutOfOrder. ReadState, WriteState, IsOpen and Close are
// safe from any goroutine. Deadlines are those of the net.Conn (see SetDeadline).
type Socket struct {
	conn net.Conn
	cfg  config

	// mu guards the protocol state below; it is never held during I/O.
	mu      sync.Mutex
	role    role
	rstate  ReadState
	wstate  WriteState
	reading bool // a read operation is running
	writing bool // a write operation is running
	closed  bool // the transport is closed (by Close, a non-persistent exchange or a fatal error)
	lock10  bool // client sends HTTP/1.0 (LockClientToHTTP10)
	// switched: a 101 or a 2xx to CONNECT went by, the stream no longer carries HTTP; hijacked: Hijack took it.
	switched bool
	hijacked bool
	rgen     uint64
	watch    *peerWatch // a NotifyPeerGone read in the background
	// readDeadline is the last read deadline set through the Socket, restored after a background read.
	readDeadline time.Time

	// The exchange: the message last read (server: the request being answered; client: the response).
	minor        int   // HTTP/1.minor of the received message
	keepAlive    bool  // the exchange leaves the connection open
	head         bool  // server: the request is HEAD
	connect      bool  // server: the request is CONNECT
	upgradeReq   bool  // server: the HTTP/1.1 request asks to switch protocols (UpgradeDesired)
	continueReq  bool  // server: the request asked for 100-continue and its body is not read yet
	unread       int64 // server: body bytes known to be unread (-1: unknown, chunked); 0 when done
	discard      bool  // server: answered before the request body was read; drain it before the next request
	contentLen   int64 // declared framing of the received message: n, -1 (chunked or until close)
	methods      []uint8
	methodsHead  int
	wframe       uint8      // framing of the streamed message being written
	wremain      int64      // bytes still expected for a Content-Length stream
	wdropSilent  bool       // the streamed message takes no body and drops it silently (a reply to HEAD)
	wlock        sync.Mutex // serialises writes on the conn (responses and canned error replies)
	writeScratch writeScratch

	// Read side, owned by the running read operation.
	buf     []byte
	r, w    int
	body    bodyFraming
	headLen int      // length of the last head read, without its final empty line
	tscan   headScan // progress through a trailer section arriving over several reads
}

// New returns a Socket over conn with an undecided role and the default limits (see Config). The Socket owns conn:
// Close closes it.
func New(conn net.Conn) *Socket { return (*Config)(nil).New(conn) }

// ReadState returns the state of the read side.
func (s *Socket) ReadState() ReadState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rstate
}

// WriteState returns the state of the write side.
func (s *Socket) WriteState() WriteState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wstate
}

// IsOpen reports whether the transport is still open: false after Close, after a non-persistent exchange
// completed (the socket closed the connection), and after a fatal protocol or transport error.
func (s *Socket) IsOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed
}

// Close closes the transport. Blocked operations return an error wrapping net.ErrClosed. Closing an already closed
// Socket returns nil.
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.conn.Close()
}

// closeTransport closes the connection after a non-persistent exchange or a fatal error.
func (s *Socket) closeTransport() {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if !already {
		_ = s.conn.Close()
	}
}

// usable reports, under s.mu, why no operation may start: hijacked, switched protocols, or closed.
func (s *Socket) usable() error {
	switch {
	case s.hijacked:
		return ErrHijacked
	case s.switched:
		return ErrProtocolSwitched
	case s.closed:
		return errClosed
	}
	return nil
}

func (s *Socket) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ioError maps a transport error: after Close it wraps net.ErrClosed.
func (s *Socket) ioError(err error) error {
	if s.isClosed() {
		return closedError(err)
	}
	return err
}

// LockClientToHTTP10 makes a client (or an undecided socket) send HTTP/1.0 requests: WriteRequestMetadata then
// fails with ErrNativeStreamUnsupported and every response closes the connection. It is ignored on a server, and
// a reset to the undecided role (a failed read) undoes it.
func (s *Socket) LockClientToHTTP10() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.role != roleServer {
		s.lock10 = true
	}
}

// WriteResponseNativeStream reports whether the response to the request being answered may be streamed
// (WriteResponseMetadata), that is the exchange is HTTP/1.1. It fails with ErrOutOfOrder when no request was read
// (read state "empty").
func (s *Socket) WriteResponseNativeStream() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.role != roleServer {
		return false, ErrWrongDirection
	}
	if s.rstate == ReadEmpty {
		return false, ErrOutOfOrder
	}
	return s.minor >= 1, nil
}

// Proto returns the version of the exchange: "HTTP/1.0" or "HTTP/1.1" as the last received message declared it
// (a server answers in that version).
func (s *Socket) Proto() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.minor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// KeepAlive reports whether the current exchange leaves the connection open once complete: by version and
// Connection header of the received message, cleared by ambiguous framing, by "Connection: close" in a written
// response, or by an unread body over the discard limit.
func (s *Socket) KeepAlive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keepAlive && !s.closed
}

// ContentLength returns the body framing of the last received message: the Content-Length, 0 for no body, or -1
// when the length is unknown (chunked, or a response delimited by the end of the connection).
func (s *Socket) ContentLength() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.contentLen
}

// LocalAddr returns the transport's local address.
func (s *Socket) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr returns the transport's remote address.
func (s *Socket) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// SetDeadline sets the transport's read and write deadlines (net.Conn.SetDeadline); a blocked operation then fails
// with a timeout error (os.ErrDeadlineExceeded).
func (s *Socket) SetDeadline(t time.Time) error {
	s.mu.Lock()
	s.readDeadline = t
	s.mu.Unlock()
	return s.conn.SetDeadline(t)
}

// SetReadDeadline sets the transport's read deadline.
func (s *Socket) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.readDeadline = t
	s.mu.Unlock()
	return s.conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the transport's write deadline.
func (s *Socket) SetWriteDeadline(t time.Time) error { return s.conn.SetWriteDeadline(t) }

// BodyReader returns an io.Reader over the body of m, the message being read (the one given to ReadRequest or
// ReadResponse). It first yields the bytes already appended to m.Body (truncating m.Body as it goes), then reads
// the rest of the body straight into the caller's buffers with bounded memory. At the end of the message it
// returns io.EOF, with any trailers in m's Trailer. Reading after the exchange moved on (the socket read another
// message, or a server answered and the rest was discarded) fails with ErrOutOfOrder.
func (s *Socket) BodyReader(m Message) io.Reader {
	s.mu.Lock()
	gen := s.rgen
	s.mu.Unlock()
	return &bodyReader{s: s, m: m, gen: gen}
}
