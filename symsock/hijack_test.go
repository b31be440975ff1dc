package symsock

import (
	"io"
	"net/http"
	"testing"
)

const upgradeReq = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

// readN reads exactly n bytes from r.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	mustNil(t, err)
	return string(b)
}

func TestServerSwitchesProtocolsAndHandsOverReadAheadBytes(t *testing.T) {
	s, peer := newPair(t)
	// The client's first frame arrives in the same segment as its request.
	req := serverGot(t, s, peer, upgradeReq+"early")
	eq(t, "UpgradeDesired", UpgradeDesired(req), true)
	mustNil(t, s.WriteResponse(&Response{Status: 101, Header: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}}))
	expectWire(t, peer, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	eq(t, "IsOpen", s.IsOpen(), true)

	var next Request
	mustIs(t, s.ReadRequest(&next), ErrProtocolSwitched)
	mustIs(t, s.WriteResponse(&Response{Status: 200}), ErrProtocolSwitched)

	conn, err := s.Hijack()
	mustNil(t, err)
	eq(t, "IsOpen after Hijack", s.IsOpen(), false)
	mustIs(t, s.ReadRequest(&next), ErrHijacked)
	_, err = s.Hijack()
	mustIs(t, err, ErrHijacked)
	mustNil(t, s.Close()) // must not close the hijacked connection

	eq(t, "read-ahead bytes", readN(t, conn, 5), "early")
	send(t, peer, "later")
	eq(t, "stream bytes", readN(t, conn, 5), "later")
	_, err = conn.Write([]byte("pong"))
	mustNil(t, err)
	expectWire(t, peer, "pong")
	_, ok := conn.(interface{ CloseWrite() error })
	eq(t, "hijacked conn has CloseWrite", ok, true)
	mustNil(t, conn.Close())
	expectClosed(t, peer)
}

func TestHijackWithoutReadAheadReturnsTheConnItself(t *testing.T) {
	c, peer := tcpPair(t)
	s := New(c)
	serverGot(t, s, peer, "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
	mustNil(t, s.WriteResponse(&Response{Status: 200}))
	expectWire(t, peer, "HTTP/1.1 200 OK\r\n\r\n")
	var next Request
	mustIs(t, s.ReadRequest(&next), ErrProtocolSwitched)
	conn, err := s.Hijack()
	mustNil(t, err)
	if conn != c {
		t.Fatalf("Hijack returned %T, want the connection given to New", conn)
	}
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
			mustIs(t, s.WriteResponse(&tt.res), ErrInvalidMessage)
			states(t, s, ReadFinished, WriteEmpty)
			expectSilence(t, peer)
			mustNil(t, s.WriteResponse(&Response{Status: 200}))
		})
	}
}

func TestEarlyHintsPrecedeTheFinalResponse(t *testing.T) {
	s, peer := newPair(t)
	serverGot(t, s, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n")
	mustNil(t, s.WriteResponse(&Response{Status: 103, Header: http.Header{"Link": {"</s.css>; rel=preload"}}}))
	expectWire(t, peer, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
	states(t, s, ReadMessageReady, WriteEmpty)
	mustIs(t, s.WriteResponseMetadata(&Response{Status: 103}), ErrInvalidMessage)
	send(t, peer, "ping")
	var req Request
	readWhole(t, s, &req, ReadFinished)
	mustNil(t, s.WriteResponse(&Response{Status: 200, Body: []byte("ok")}))
	expectWire(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
}

func TestClientTakesTheStreamAfter101(t *testing.T) {
	s, peer := newPair(t)
	mustNil(t, s.WriteRequest(&Request{Method: "GET", Target: "/chat", Header: http.Header{"Host": {"a"}, "Upgrade": {"websocket"}, "Connection": {"Upgrade"}}}))
	send(t, peer, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframe")
	var res Response
	mustNil(t, s.ReadResponse(&res))
	eq(t, "first status", res.Status, 103)
	mustNil(t, s.ReadResponse(&res))
	eq(t, "second status", res.Status, 101)
	eq(t, "IsOpen", s.IsOpen(), true)
	mustIs(t, s.ReadResponse(&res), ErrProtocolSwitched)
	mustIs(t, s.WriteRequest(&Request{Method: "GET", Target: "/", Header: http.Header{"Host": {"a"}}}), ErrProtocolSwitched)
	conn, err := s.Hijack()
	mustNil(t, err)
	eq(t, "read-ahead", readN(t, conn, 5), "frame")
}

func TestClientTunnelAfterConnect(t *testing.T) {
	s, peer := newPair(t)
	mustNil(t, s.WriteRequest(&Request{Method: "CONNECT", Target: "b:443", Header: http.Header{"Host": {"b:443"}}}))
	send(t, peer, "HTTP/1.1 200 Connection established\r\n\r\n")
	var res Response
	mustNil(t, s.ReadResponse(&res))
	eq(t, "status", res.Status, 200)
	mustIs(t, s.ReadResponse(&res), ErrProtocolSwitched)
	conn, err := s.Hijack()
	mustNil(t, err)
	send(t, peer, "tls")
	eq(t, "tunnel", readN(t, conn, 3), "tls")
}

func TestHijackWhileReadingIsOutOfOrder(t *testing.T) {
	s, peer := newPair(t)
	done := readRequestRunning(t, s)
	_, err := s.Hijack()
	mustIs(t, err, ErrOutOfOrder)
	send(t, peer, r0)
	mustNil(t, <-done)
	_, err = s.Hijack()
	mustNil(t, err)
}
