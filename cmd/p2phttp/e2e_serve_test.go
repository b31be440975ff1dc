package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
)

// TestServeLimitsEachPeer opens streams through forward: beyond --max-streams they are refused, a stream whose
// request header does not come is closed after --read-header-timeout, the first stream (kept by forward for its
// first local connection) may wait for its first request, and an idle kept-alive stream is closed after
// --idle-timeout.
func TestServeLimitsEachPeer(t *testing.T) {
	srv := testServer(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello"), 0o644))
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--dir", dir, "--max-streams", "2", "--read-header-timeout", "3s", "--idle-timeout", "2s"}, peerArgs(srv)...)...)
	listen := freeAddr(t, "tcp")
	fwd := startCode(t, code, append([]string{"forward", "--listen", listen}, peerArgs(srv)...)...)
	fwd.waitStderr(`forwarding http://`, 60*time.Second)

	dial := func() net.Conn {
		c, err := net.Dial("tcp", listen)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closed reports whether the connection ends (EOF) within d.
	closed := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}
	getOn := func(c net.Conn) string {
		_, err := io.WriteString(c, "GET /a.txt HTTP/1.1\r\nHost: peer\r\n\r\n")
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(b)
	}

	first := dial()         // the meeting's first stream
	time.Sleep(time.Second) // each stream opened before the next, so which one is refused is known
	second := dial()        // stream 2 of 2
	time.Sleep(time.Second)
	third := dial() // one too many
	assert.True(t, closed(third, 10*time.Second), "the stream beyond --max-streams is refused")
	serve.waitStderr(`peer 127\.0\.0\.1:\d+ opened more than 2 streams at once; refusing the extra ones \(--max-streams\)`, 10*time.Second)
	assert.True(t, closed(second, 20*time.Second), "a stream without a request header is closed after --read-header-timeout")
	assert.Equal(t, "200 OK hello", getOn(first), "the first stream may wait for its first request")
	assert.True(t, closed(first, 20*time.Second), "a kept-alive stream is closed after --idle-timeout")
	assert.Equal(t, "200 OK hello", getOn(dial()), "a slot is free again")
	_, stderr := serve.output()
	assert.Equal(t, 1, strings.Count(stderr, "opened more than 2 streams"), "said once")
	assert.Equal(t, exitInterrupted, fwd.interrupt())
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

// TestServeChecksTheSignallingServerBeforePrintingACode: no code for a server that is not there.
func TestServeChecksTheSignallingServerBeforePrintingACode(t *testing.T) {
	dead := "http://" + freeAddr(t, "tcp")
	stdout, stderr, status := runBinary(t, 20*time.Second, "serve", "--dir", t.TempDir(), "--signal", dead, "--udp", "127.0.0.1:0")
	assert.Equal(t, exitFailure, status)
	assert.Empty(t, stdout)
	assert.Equal(t, "p2phttp: cannot reach signalling server "+dead+": connection refused; start one with `p2phttp signal` or pass --signal URL\n", stderr)
}
