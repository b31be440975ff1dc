// Package wiretest holds the test tools of the HTTP packages that assert on raw bytes: a loopback TCP pair, and
// expectations about what the raw peer end receives. Every blocking step is bounded by Timeout.
package wiretest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// Timeout bounds every blocking step of a test so a bug shows as a failure, never a hang.
const Timeout = 10 * time.Second

// Pair returns a connected loopback TCP pair: the end for the code under test and the raw peer end, both with a
// deadline Timeout away and closed when the test ends.
func Pair(t testing.TB) (net.Conn, net.Conn) {
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
	deadline := time.Now().Add(Timeout)
	_ = r.c.SetDeadline(deadline)
	_ = peer.SetDeadline(deadline)
	t.Cleanup(func() {
		r.c.Close()
		peer.Close()
	})
	return r.c, peer
}

// Send writes s to the peer.
func Send(t testing.TB, peer net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(peer, s); err != nil {
		t.Fatalf("peer write: %v", err)
	}
}

// ExpectWire reads exactly len(want) bytes from the peer and compares them.
func ExpectWire(t testing.TB, peer net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	n, err := io.ReadFull(peer, got)
	if err != nil || string(got) != want {
		t.Fatalf("wire:\n got %q (err %v)\nwant %q", got[:n], err, want)
	}
}

// ExpectSilence asserts that the peer receives nothing for a short while.
func ExpectSilence(t testing.TB, peer net.Conn) {
	t.Helper()
	_ = peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var b [256]byte
	n, err := peer.Read(b[:])
	_ = peer.SetReadDeadline(time.Now().Add(Timeout))
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("peer received %q (err %v), want nothing", b[:n], err)
	}
}

// ExpectClosed reads what is left on the peer side until EOF (the other end closed the connection) and returns
// it.
func ExpectClosed(t testing.TB, peer net.Conn) string {
	t.Helper()
	var buf bytes.Buffer
	_, err := io.Copy(&buf, peer)
	if err != nil {
		t.Fatalf("peer: want EOF (connection closed), got %v after %q", err, buf.String())
	}
	return buf.String()
}
