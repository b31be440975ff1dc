package symsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testTimeout bounds every blocking step of a test so a bug shows as a failure, never a hang.
const testTimeout = 10 * time.Second

// tcpPair returns a connected loopback TCP pair: the end for the socket under test and the raw peer end.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	deadline := time.Now().Add(testTimeout)
	_ = r.c.SetDeadline(deadline)
	_ = peer.SetDeadline(deadline)
	t.Cleanup(func() {
		r.c.Close()
		peer.Close()
	})
	return r.c, peer
}

// newPair returns a Socket over loopback TCP and the raw peer connection.
func newPair(t testing.TB, opts ...Option) (*Socket, net.Conn) {
	t.Helper()
	c, peer := tcpPair(t)
	return New(c, opts...), peer
}

func send(t testing.TB, peer net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(peer, s); err != nil {
		t.Fatalf("peer write: %v", err)
	}
}

// expectWire reads exactly len(want) bytes from the peer and compares them.
func expectWire(t testing.TB, peer net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	n, err := io.ReadFull(peer, got)
	if err != nil || string(got) != want {
		t.Fatalf("wire:\n got %q (err %v)\nwant %q", got[:n], err, want)
	}
}

// expectSilence asserts that the peer receives nothing for a short while.
func expectSilence(t testing.TB, peer net.Conn) {
	t.Helper()
	_ = peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var b [256]byte
	n, err := peer.Read(b[:])
	_ = peer.SetReadDeadline(time.Now().Add(testTimeout))
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("peer received %q (err %v), want nothing", b[:n], err)
	}
}

// expectClosed reads what is left on the peer side until EOF (the socket closed the connection) and returns it.
func expectClosed(t testing.TB, peer net.Conn) string {
	t.Helper()
	var buf bytes.Buffer
	_, err := io.Copy(&buf, peer)
	if err != nil {
		t.Fatalf("peer: want EOF (connection closed), got %v after %q", err, buf.String())
	}
	return buf.String()
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
		if time.Now().After(deadline) {
			t.Fatal("write state never became finished while reading")
		}
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
