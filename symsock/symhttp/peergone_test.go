package symhttp

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
