package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
)

// A WebSocket client on one machine talks to a WebSocket server behind the other peer: forward carries the local
// TCP connection over a stream, serve --proxy hands the upgraded stream to its reverse proxy.
func TestWebSocketThroughForwardAndServeProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	defer backend.Close()
	srv := testServer(t)
	code := signal.NewCode()
	serve := start(t, append([]string{"serve", "--proxy", backend.URL, code}, peerArgs(srv)...)...)
	listen := freeAddr(t, "tcp")
	fwd := start(t, append([]string{"forward", code, "--listen", listen}, peerArgs(srv)...)...)
	fwd.waitStderr(`forwarding http://`+regexp.QuoteMeta(listen)+` to the peer`, 60*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Two WebSockets at once, each over a stream of its own.
	for i := range 2 {
		c, res, err := websocket.Dial(ctx, "ws://"+listen+"/chat", nil)
		require.NoError(t, err, "dial %d", i)
		assert.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
		defer c.CloseNow()
		for _, msg := range []string{"hello", strings.Repeat("x", 20000)} {
			require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
			typ, got, err := c.Read(ctx)
			require.NoError(t, err)
			assert.Equal(t, websocket.MessageText, typ)
			assert.Equal(t, "echo: "+msg, string(got))
		}
		require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
	}
	assert.Equal(t, exitInterrupted, fwd.interrupt())
	assert.Equal(t, exitInterrupted, serve.interrupt())
}
