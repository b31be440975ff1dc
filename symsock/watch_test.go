package symsock

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A handler's context ends when the client goes away while the handler works, with or without a request body.
func TestServeClientGoneCancelsHandlerContext(t *testing.T) {
	for _, in := range []string{
		r0,
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nping",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nping\r\n0\r\n\r\n",
	} {
		t.Run(strings.Fields(in)[0]+" "+in[len(in)-4:], func(t *testing.T) {
			started := make(chan struct{})
			cause := make(chan error, 1)
			peer, _, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				close(started)
				select {
				case <-r.Context().Done():
					cause <- r.Context().Err()
				case <-time.After(testTimeout):
					cause <- nil
				}
			}))
			send(t, peer, in)
			<-started
			require.NoError(t, peer.Close())
			require.ErrorIs(t, <-cause, context.Canceled)
			serveResult(t, done)
		})
	}
}

// Bytes of a pipelined request end the watch without cancelling the request being served.
func TestServePipelinedRequestDoesNotCancel(t *testing.T) {
	peer, br, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/1" {
			select {
			case <-r.Context().Done():
				http.Error(w, "cancelled", http.StatusInternalServerError)
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		io.WriteString(w, r.URL.Path)
	}))
	send(t, peer, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(20 * time.Millisecond) // the first handler is waiting, the watch reading
	send(t, peer, "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
	_, body := readResponse(t, br, "GET")
	require.Equal(t, "/1", body, "first")
	_, body = readResponse(t, br, "GET")
	require.Equal(t, "/2", body, "second")
	require.NoError(t, peer.Close())
	require.NoError(t, serveResult(t, done))
}

func TestNotifyPeerGoneStates(t *testing.T) {
	s, peer := newPair(t)
	require.ErrorIs(t, s.NotifyPeerGone(func() {}), ErrOutOfOrder) // no request yet
	serverGot(t, s, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n")
	require.ErrorIs(t, s.NotifyPeerGone(func() {}), ErrOutOfOrder) // body unread
	send(t, peer, "ping")
	var req Request
	readWhole(t, s, &req, ReadFinished)
	gone := make(chan struct{})
	require.NoError(t, s.NotifyPeerGone(func() { close(gone) }))
	require.ErrorIs(t, s.NotifyPeerGone(func() {}), ErrOutOfOrder) // already watching
	// The response goes out while the watch reads; the next request stops it and is read whole.
	require.NoError(t, s.WriteResponse(&Response{Status: 204}))
	expectWire(t, peer, "HTTP/1.1 204 No Content\r\n\r\n")
	deadline := time.Now().Add(testTimeout)
	require.NoError(t, s.SetReadDeadline(deadline))
	send(t, peer, r0)
	require.NoError(t, s.ReadRequest(&req))
	require.Equal(t, "/", req.Target, "target")
	select {
	case <-gone:
		t.Fatal("gone called for a live peer")
	default:
	}
}
