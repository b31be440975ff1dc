package symsock

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

const upgradeReq = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

// readN reads exactly n bytes from r.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	require.NoError(t, err)
	return string(b)
}

func TestServerSwitchesProtocolsAndHandsOverReadAheadBytes(t *testing.T) {
	s, peer := newPair(t)
	// The client's first frame arrives in the same segment as its request.
	req := serverGot(t, s, peer, upgradeReq+"early")
	require.Equal(t, true, UpgradeDesired(req), "UpgradeDesired")
	require.NoError(t, s.WriteResponse(&Response{Status: 101, Header: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}}))
	expectWire(t, peer, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	require.Equal(t, true, s.IsOpen(), "IsOpen")

	var next Request
	require.ErrorIs(t, s.ReadRequest(&next), ErrProtocolSwitched)
	require.ErrorIs(t, s.WriteResponse(&Response{Status: 200}), ErrProtocolSwitched)

	conn, err := s.Hijack()
	require.NoError(t, err)
	require.Equal(t, false, s.IsOpen(), "IsOpen after Hijack")
	require.ErrorIs(t, s.ReadRequest(&next), ErrHijacked)
	_, err = s.Hijack()
	require.ErrorIs(t, err, ErrHijacked)
	require.NoError(t, s.Close()) // must not close the hijacked connection

	require.Equal(t, "early", readN(t, conn, 5), "read-ahead bytes")
	send(t, peer, "later")
	require.Equal(t, "later", readN(t, conn, 5), "stream bytes")
	_, err = conn.Write([]byte("pong"))
	require.NoError(t, err)
	expectWire(t, peer, "pong")
	_, ok := conn.(interface{ CloseWrite() error })
	require.Equal(t, true, ok, "hijacked conn has CloseWrite")
	require.NoError(t, conn.Close())
	expectClosed(t, peer)
}

func TestHijackWithoutReadAheadReturnsTheConnItself(t *testing.T) {
	c, peer := tcpPair(t)
	s := New(c)
	serverGot(t, s, peer, "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
	require.NoError(t, s.WriteResponse(&Response{Status: 200}))
	expectWire(t, peer, "HTTP/1.1 200 OK\r\n\r\n")
	var next Request
	require.ErrorIs(t, s.ReadRequest(&next), ErrProtocolSwitched)
	conn, err := s.Hijack()
	require.NoError(t, err)
	require.Same(t, c, conn, "Hijack returned %T, want the connection given to New", conn)
}

func TestSwitchingProtocolsNeedsAnUpgradeRequestAndHeader(t *testing.T) {
	tests := []struct {
		name, req string
		res       Response
	}{
		{"request did not ask", r0, Response{Status: 101, Header: http.Header{"Upgrade": {"websocket"}}}},
		{"no Upgrade in the response", upgradeReq, Response{Status: 101}},
		{"body", upgradeReq, Response{Status: 101, Header: http.Header{"Upgrade": {"websocket"}}, Body: []byte("x")}},
		{"HTTP/1.0 request", "GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", Response{Status: 101, Header: http.Header{"Upgrade": {"websocket"}}}},
		{"100 goes through WriteResponseContinue", r0, Response{Status: 100}},
		{"interim to HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", Response{Status: 103}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, peer := newPair(t)
			serverGot(t, s, peer, tt.req)
			require.ErrorIs(t, s.WriteResponse(&tt.res), ErrInvalidMessage)
			states(t, s, ReadFinished, WriteEmpty)
			expectSilence(t, peer)
			require.NoError(t, s.WriteResponse(&Response{Status: 200}))
		})
	}
}

func TestEarlyHintsPrecedeTheFinalResponse(t *testing.T) {
	s, peer := newPair(t)
	serverGot(t, s, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n")
	require.NoError(t, s.WriteResponse(&Response{Status: 103, Header: http.Header{"Link": {"</s.css>; rel=preload"}}}))
	expectWire(t, peer, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
	states(t, s, ReadMessageReady, WriteEmpty)
	require.ErrorIs(t, s.WriteResponseMetadata(&Response{Status: 103}), ErrInvalidMessage)
	send(t, peer, "ping")
	var req Request
	readWhole(t, s, &req, ReadFinished)
	require.NoError(t, s.WriteResponse(&Response{Status: 200, Body: []byte("ok")}))
	expectWire(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

func TestClientTakesTheStreamAfter101(t *testing.T) {
	s, peer := newPair(t)
	require.NoError(t, s.WriteRequest(&Request{Method: "GET", Target: "/chat", Header: http.Header{"Host": {"a"}, "Upgrade": {"websocket"}, "Connection": {"Upgrade"}}}))
	send(t, peer, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframe")
	var res Response
	require.NoError(t, s.ReadResponse(&res))
	require.Equal(t, 103, res.Status, "first status")
	require.NoError(t, s.ReadResponse(&res))
	require.Equal(t, 101, res.Status, "second status")
	require.Equal(t, true, s.IsOpen(), "IsOpen")
	require.ErrorIs(t, s.ReadResponse(&res), ErrProtocolSwitched)
	require.ErrorIs(t, s.WriteRequest(&Request{Method: "GET", Target: "/", Header: http.Header{"Host": {"a"}}}), ErrProtocolSwitched)
	conn, err := s.Hijack()
	require.NoError(t, err)
	require.Equal(t, "frame", readN(t, conn, 5), "read-ahead")
}

func TestClientTunnelAfterConnect(t *testing.T) {
	s, peer := newPair(t)
	require.NoError(t, s.WriteRequest(&Request{Method: "CONNECT", Target: "b:443", Header: http.Header{"Host": {"b:443"}}}))
	send(t, peer, "HTTP/1.1 200 Connection established\r\n\r\n")
	var res Response
	require.NoError(t, s.ReadResponse(&res))
	require.Equal(t, 200, res.Status, "status")
	require.ErrorIs(t, s.ReadResponse(&res), ErrProtocolSwitched)
	conn, err := s.Hijack()
	require.NoError(t, err)
	send(t, peer, "tls")
	require.Equal(t, "tls", readN(t, conn, 3), "tunnel")
}

func TestHijackWhileReadingIsOutOfOrder(t *testing.T) {
	s, peer := newPair(t)
	done := readRequestRunning(t, s)
	_, err := s.Hijack()
	require.ErrorIs(t, err, ErrOutOfOrder)
	send(t, peer, r0)
	require.NoError(t, <-done)
	_, err = s.Hijack()
	require.NoError(t, err)
}
