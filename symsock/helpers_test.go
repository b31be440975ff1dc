package symsock

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/wiretest"
)

// The raw-bytes tools shared with symhttp's tests.
const testTimeout = wiretest.Timeout

var (
	tcpPair       = wiretest.Pair
	send          = wiretest.Send
	expectWire    = wiretest.ExpectWire
	expectSilence = wiretest.ExpectSilence
	expectClosed  = wiretest.ExpectClosed
)

// newPair returns a Socket over loopback TCP and the raw peer connection.
func newPair(t testing.TB, cfg ...Config) (*Socket, net.Conn) {
	t.Helper()
	c, peer := tcpPair(t)
	if len(cfg) > 0 {
		return cfg[0].New(c), peer
	}
	return New(c), peer
}

func states(t testing.TB, s *Socket, r ReadState, w WriteState) {
	t.Helper()
	require.Equal(t, r.String()+"/"+w.String(), s.ReadState().String()+"/"+s.WriteState().String(), "read/write states")
}

// readWhole reads the rest of the message being read with ReadSome until the read state says it ended.
func readWhole(t testing.TB, s *Socket, m Message, end ReadState) {
	t.Helper()
	for s.ReadState() != end {
		require.NoError(t, s.ReadSome(m))
	}
}

// readRequestRunning starts ReadRequest on s in a goroutine and waits until it runs (a server's write state is
// "finished" while it reads a request); the channel gets its result.
func readRequestRunning(t testing.TB, s *Socket) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.ReadRequest(&Request{}) }()
	deadline := time.Now().Add(testTimeout)
	for s.WriteState() != WriteFinished {
		require.False(t, time.Now().After(deadline), "write state never became finished while reading")
		time.Sleep(time.Millisecond)
	}
	return done
}

const r0 = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"

// memConn is an in-memory net.Conn that reads a fixed input (then io.EOF) and discards what is written, so a fuzz
// input can never block.
type memConn struct {
	in     *bytes.Reader
	closed bool
}

func newMemConn(in []byte) *memConn { return &memConn{in: bytes.NewReader(in)} }

func (c *memConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.in.Read(p)
}

func (c *memConn) Write(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return len(p), nil
}

func (c *memConn) Close() error                     { c.closed = true; return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
