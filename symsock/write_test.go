package symsock

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStreamedContentLength: a streamed message with a Content-Length goes out as identity bytes, and the socket
// holds the caller to the declared length.
func TestStreamedContentLength(t *testing.T) {
	s, peer := newPair(t)
	serverGot(t, s, peer, r0)
	res := &Response{Status: 200, Header: http.Header{"Content-Length": {"10"}}}
	require.NoError(t, s.WriteResponseMetadata(res))
	expectWire(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
	res.Body = []byte("hello")
	require.NoError(t, s.Write(res))
	expectWire(t, peer, "hello")
	res.Body = []byte("world!")
	require.ErrorIs(t, s.Write(res), ErrInvalidMessage)
	require.ErrorIs(t, s.WriteEndOfMessage(), ErrInvalidMessage)
	res.Trailer = http.Header{"X": {"1"}}
	require.ErrorIs(t, s.WriteTrailers(res), ErrInvalidMessage)
	res.Body = []byte("world")
	require.NoError(t, s.Write(res))
	require.NoError(t, s.WriteEndOfMessage())
	expectWire(t, peer, "world")
	states(t, s, ReadEmpty, WriteFinished)
	expectSilence(t, peer)

	// HTTP/1.0 peers take a streamed response when its length is known.
	serverGot(t, s, peer, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	res = &Response{Status: 200, Header: http.Header{"Content-Length": {"2"}}, Body: []byte("ok")}
	require.NoError(t, s.WriteResponseMetadata(res))
	require.NoError(t, s.Write(res))
	require.NoError(t, s.WriteEndOfMessage())
	expectWire(t, peer, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok")
}

// TestWriteRejectsInvalid: header injection and malformed start lines are refused before anything is written, and
// the socket stays usable.
func TestWriteRejectsInvalid(t *testing.T) {
	s, peer := newPair(t)
	for _, req := range []*Request{
		{Method: "GET", Target: "/", Header: http.Header{"X": {"a\r\nInjected: yes"}}},
		{Method: "GET", Target: "/", Header: http.Header{"Bad Name": {"a"}}},
		{Method: "GET", Target: "/", Header: http.Header{"X": {"a\x00"}}},
		{Method: "GET", Target: "/ HTTP/1.1\r\nX: y"},
		{Method: "G T", Target: "/"},
		{Method: "", Target: "/"},
		{Method: "GET", Target: ""},
		{Method: "GET", Target: "/a#fragment"},
		{Method: "GET", Target: "*"},
		{Method: "GET", Target: "/", Header: http.Header{"Transfer-Encoding": {"chunked"}}},
		{Method: "POST", Target: "/", Header: http.Header{"Content-Length": {"3"}}, Body: []byte("ab")},
		{Method: "POST", Target: "/", Header: http.Header{"Content-Length": {"x"}}, Body: []byte("ab")},
	} {
		require.ErrorIs(t, s.WriteRequest(req), ErrInvalidMessage)
		states(t, s, ReadEmpty, WriteEmpty)
	}
	require.ErrorIs(t, s.WriteRequestMetadata(&Request{Method: "GET", Target: "/", Header: http.Header{"Transfer-Encoding": {"gzip"}}}), ErrInvalidMessage)
	expectSilence(t, peer)

	srv, peer2 := newPair(t)
	serverGot(t, srv, peer2, r0)
	for _, res := range []*Response{
		{Status: 200, Header: http.Header{"X": {"a\nb"}}},
		{Status: 200, Reason: "O\r\nK"},
		{Status: 99},
		{Status: 1000},
		{Status: 200, Header: http.Header{"Content-Length": {"1", "1"}}, Body: []byte("a")},
	} {
		require.ErrorIs(t, srv.WriteResponse(res), ErrInvalidMessage)
		require.ErrorIs(t, srv.WriteResponseMetadata(res), ErrInvalidMessage)
		states(t, srv, ReadFinished, WriteEmpty)
	}
	expectSilence(t, peer2)
	require.NoError(t, srv.WriteResponse(&Response{Status: 200}))
	expectWire(t, peer2, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
}

// TestResponseToHTTP10 answers an HTTP/1.0 request with a body: the version, Connection and framing follow the
// request, and the connection closes.
func TestResponseToHTTP10(t *testing.T) {
	s, peer := newPair(t)
	req := serverGot(t, s, peer, "POST /form HTTP/1.0\r\nContent-Length: 3\r\n\r\na=b")
	readWhole(t, s, req, ReadFinished)
	require.Equal(t, "a=b", string(req.Body), "body")
	require.Equal(t, false, s.KeepAlive(), "KeepAlive")
	require.NoError(t, s.WriteResponse(&Response{Status: 201, Body: []byte("made")}))
	require.Equal(t, "HTTP/1.0 201 Created\r\nConnection: close\r\nContent-Length: 4\r\n\r\nmade", expectClosed(t, peer), "wire")
}

// TestDefaults: a Socket takes header sections up to DefaultMaxHeaderCount fields and a 40 kB cookie without
// options.
func TestDefaults(t *testing.T) {
	s, peer := newPair(t)
	big := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Field: value\r\n", DefaultMaxHeaderCount-2) +
		"Cookie: " + strings.Repeat("c", 40000) + "\r\n\r\n"
	go func() { _, _ = io.WriteString(peer, big) }()
	req := &Request{}
	require.NoError(t, s.ReadRequest(req))
	require.Equal(t, DefaultMaxHeaderCount-2, len(req.Header.Values("X-Field")), "fields")
	require.Equal(t, 40000, len(req.Header.Get("Cookie")), "cookie length")
}

// TestSteadyStateAllocs: on a reused Request and Response, reading a request costs two allocations (the head's
// string and the header values' backing array) and writing a response none.
func TestSteadyStateAllocs(t *testing.T) {
	s := New(&loopConn{data: []byte(benchRequest)})
	var req Request
	readAllocs := testing.AllocsPerRun(200, func() {
		if err := s.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteResponse(&Response{Status: 200}); err != nil {
			t.Fatal(err)
		}
	})
	res := &Response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("hello")}
	writeAllocs := testing.AllocsPerRun(200, func() {
		s.mu.Lock()
		s.role, s.rstate, s.wstate = roleServer, ReadFinished, WriteEmpty
		s.mu.Unlock()
		if err := s.WriteResponse(res); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, readAllocs, 2.0, "allocations per request read and answered")
	require.LessOrEqual(t, writeAllocs, 0.0, "allocations per response written")
}
