package symsock

import (
	"net"
	"sync"
)

// Hijack takes the connection away from the Socket, for a protocol that follows HTTP on the same stream: after a
// "101 Switching Protocols" (written with WriteResponse or read with ReadResponse), after a 2xx answer to CONNECT,
// or on a server that answers the request just read itself, on the raw stream (as a reverse proxy does).
//
// The returned net.Conn first yields the bytes the Socket had read ahead but not consumed (the peer may send the
// new protocol's first bytes right behind its HTTP message), then the stream. When nothing was read ahead it is
// the net.Conn given to New itself. The caller owns it: Close on the Socket no longer closes it, IsOpen reports
// false, and every other operation fails with ErrHijacked.
//
// Hijack fails with ErrOutOfOrder while a read or write operation runs (a BodyReader being read included) and with
// ErrHijacked when called twice.
func (s *Socket) Hijack() (net.Conn, error) {
	s.endWatch()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.hijacked:
		return nil, ErrHijacked
	case s.reading || s.writing:
		return nil, ErrOutOfOrder
	case s.closed:
		return nil, errClosed
	}
	s.hijacked = true
	s.closed = true
	// No read operation runs, so the input buffer is ours to hand over.
	pending := s.buf[s.r:s.w]
	s.buf, s.r, s.w = nil, 0, 0
	if len(pending) == 0 {
		return s.conn, nil
	}
	return &hijackedConn{Conn: s.conn, pending: pending}, nil
}

// hijackedConn is a hijacked connection that first returns the bytes the Socket had read ahead.
type hijackedConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
}

func (c *hijackedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// CloseWrite shuts down the writing side when the underlying connection can (a *net.TCPConn, a uTP stream), so a
// tunnel can pass a half-close on.
func (c *hijackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}

// Unwrap returns the underlying connection (whose input may lag behind by the bytes read ahead).
func (c *hijackedConn) Unwrap() net.Conn { return c.Conn }
