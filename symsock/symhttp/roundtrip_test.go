package symhttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/symsock"
)

// rtPair returns a RoundTripper over one end of a loopback pair and the raw peer.
func rtPair(t *testing.T) (*RoundTripper, net.Conn) {
	t.Helper()
	c, peer := tcpPair(t)
	return NewRoundTripper(symsock.New(c)).(*RoundTripper), peer
}

// roundTripAsync runs rt.RoundTrip(req) in a goroutine.
func roundTripAsync(rt http.RoundTripper, req *http.Request) <-chan rtResult {
	ch := make(chan rtResult, 1)
	go func() {
		res, err := rt.RoundTrip(req)
		ch <- rtResult{res, err}
	}()
	return ch
}

type rtResult struct {
	res *http.Response
	err error
}

func readAllString(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return string(b)
}

func TestRoundTripWire(t *testing.T) {
	rt, peer := rtPair(t)
	req := newReq(t, "GET", "http://h.test:81/p/a%20b?q=1", nil)
	req.Header.Set("X-B", "2")
	req.Header.Set("X-A", "1")
	req.Header.Set("Content-Length", "99") // ignored: the Request's fields decide the framing, as in net/http
	ch := roundTripAsync(rt, req)
	expectWire(t, peer, "GET /p/a%20b?q=1 HTTP/1.1\r\nHost: h.test:81\r\nX-A: 1\r\nX-B: 2\r\n\r\n")
	send(t, peer, "HTTP/1.1 201 Made\r\nContent-Length: 3\r\nX-R: r\r\n\r\nabc")
	r := <-ch
	require.NoError(t, r.err)
	res := r.res
	require.Equal(t, "201 Made", res.Status, "Status")
	require.Equal(t, 201, res.StatusCode, "StatusCode")
	require.Equal(t, "HTTP/1.1", res.Proto, "Proto")
	require.Equal(t, int64(3), res.ContentLength, "ContentLength")
	require.Equal(t, "r", res.Header.Get("X-R"), "X-R")
	require.Equal(t, req, res.Request, "Request")
	require.Equal(t, "abc", readAllString(t, res.Body), "body")
	require.NoError(t, res.Body.Close())
	require.Empty(t, req.Header.Get("Host"), "the caller's Request was modified: %v", req.Header)
	require.Equal(t, "99", req.Header.Get("Content-Length"), "the caller's Request was modified: %v", req.Header)
}

func TestRoundTripRequestBodies(t *testing.T) {
	rt, peer := rtPair(t)
	br := bufio.NewReader(peer)
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

	ch := roundTripAsync(rt, newReq(t, "POST", "http://h/small", strings.NewReader("hello")))
	expectWire(t, peer, "POST /small HTTP/1.1\r\nContent-Length: 5\r\nHost: h\r\n\r\nhello")
	send(t, peer, ok)
	require.NoError(t, (<-ch).err)

	req := newReq(t, "PUT", "http://h/chunked", nil)
	req.Body = io.NopCloser(&trailerSetter{r: strings.NewReader("stream"), set: func() { req.Trailer.Set("X-Sum", "s1") }})
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Sum": nil}
	ch = roundTripAsync(rt, req)
	got, err := http.ReadRequest(br) // net/http's parser judges the framing
	require.NoError(t, err)
	require.Equal(t, "chunked", strings.Join(got.TransferEncoding, ","), "TE")
	require.Contains(t, got.Trailer, "X-Sum", "trailer not declared in the head: %v", got.Header)
	require.Equal(t, "stream", readAllString(t, got.Body), "body")
	require.Equal(t, "s1", got.Trailer.Get("X-Sum"), "trailer")
	send(t, peer, ok)
	require.NoError(t, (<-ch).err)

	// A non-nil Body with ContentLength 0 is probed: empty means no body at all.
	req = newReq(t, "POST", "http://h/probe", nil)
	req.Body = io.NopCloser(strings.NewReader(""))
	ch = roundTripAsync(rt, req)
	expectWire(t, peer, "POST /probe HTTP/1.1\r\nHost: h\r\n\r\n")
	send(t, peer, ok)
	require.NoError(t, (<-ch).err)
}

func TestRoundTripResponseFraming(t *testing.T) {
	rt, peer := rtPair(t)
	var got1xx []int
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error { got1xx = append(got1xx, code); return nil },
	})

	ch := roundTripAsync(rt, newReq(t, "HEAD", "http://h/", nil))
	send(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
	r := <-ch
	require.NoError(t, r.err)
	require.Equal(t, int64(1000), r.res.ContentLength, "HEAD ContentLength")
	require.Equal(t, io.ReadCloser(http.NoBody), r.res.Body, "HEAD body")

	ch = roundTripAsync(rt, newReq(t, "GET", "http://h/", nil).WithContext(ctx))
	send(t, peer, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: done\r\n\r\n")
	r = <-ch
	require.NoError(t, r.err)
	require.Equal(t, 1, len(got1xx), "1xx seen")
	require.Equal(t, "chunked", strings.Join(r.res.TransferEncoding, ","), "TE")
	require.Equal(t, int64(-1), r.res.ContentLength, "ContentLength")
	require.Contains(t, r.res.Trailer, "X-T", "declared trailer missing before the body is read")
	require.Equal(t, "ok", readAllString(t, r.res.Body), "body")
	require.Equal(t, "done", r.res.Trailer.Get("X-T"), "trailer")
	r.res.Body.Close()

	ch = roundTripAsync(rt, newReq(t, "GET", "http://h/", nil))
	send(t, peer, "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n")
	r = <-ch
	require.NoError(t, r.err)
	require.Equal(t, "", readAllString(t, r.res.Body), "304 body")

	ch = roundTripAsync(rt, newReq(t, "GET", "http://h/", nil))
	send(t, peer, "HTTP/1.0 200 OK\r\n\r\nuntil the end")
	peer.(*net.TCPConn).CloseWrite()
	r = <-ch
	require.NoError(t, r.err)
	require.Equal(t, "HTTP/1.0", r.res.Proto, "Proto")
	require.Equal(t, int64(-1), r.res.ContentLength, "ContentLength")
	require.Equal(t, true, r.res.Close, "Close")
	require.Equal(t, "until the end", readAllString(t, r.res.Body), "body to EOF")
}

func TestRoundTripErrors(t *testing.T) {
	t.Run("malformed response", func(t *testing.T) {
		rt, peer := rtPair(t)
		ch := roundTripAsync(rt, newReq(t, "GET", "http://h/", nil))
		send(t, peer, "HTTP/1.1 2000 Nope\r\n\r\n")
		require.ErrorIs(t, (<-ch).err, symsock.ErrParsing)
	})
	t.Run("EOF in body", func(t *testing.T) {
		rt, peer := rtPair(t)
		ch := roundTripAsync(rt, newReq(t, "GET", "http://h/", nil))
		expectWire(t, peer, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		send(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
		r := <-ch
		require.NoError(t, r.err)
		peer.Close()
		_, err := io.ReadAll(r.res.Body)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		_, err = rt.RoundTrip(newReq(t, "GET", "http://h/", nil))
		require.ErrorIs(t, err, net.ErrClosed)
	})
	t.Run("EOF before response", func(t *testing.T) {
		rt, peer := rtPair(t)
		ch := roundTripAsync(rt, newReq(t, "GET", "http://h/", nil))
		expectWire(t, peer, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		peer.Close()
		err := (<-ch).err
		require.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), "got %v, want an EOF error", err)
	})
	t.Run("waiting for the turn honours the context", func(t *testing.T) {
		rt, peer := rtPair(t)
		first := roundTripAsync(rt, newReq(t, "GET", "http://h/1", nil))
		send(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n")
		r := <-first // its body is unread: the exchange still holds the socket
		require.NoError(t, r.err)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := rt.RoundTrip(newReq(t, "GET", "http://h/2", nil).WithContext(ctx))
		require.ErrorIs(t, err, context.Canceled)
		send(t, peer, "x")
		require.Equal(t, "x", readAllString(t, r.res.Body), "first body")
		require.Equal(t, true, rt.Socket.IsOpen(), "socket still open")
	})
	t.Run("cancelled before the exchange", func(t *testing.T) {
		rt, peer := rtPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := rt.RoundTrip(newReq(t, "GET", "http://h/", nil).WithContext(ctx))
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, true, rt.Socket.IsOpen(), "socket untouched")
		expectSilence(t, peer)
		ch := roundTripAsync(rt, newReq(t, "GET", "http://h/next", nil))
		expectWire(t, peer, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
		send(t, peer, "HTTP/1.1 204 No Content\r\n\r\n")
		require.NoError(t, (<-ch).err)
	})
	t.Run("peer gone while the body waits for 100 Continue", func(t *testing.T) {
		c, peer := tcpPair(t)
		rt := &RoundTripper{Socket: symsock.New(c), ExpectContinueTimeout: time.Hour}
		req := newReq(t, "PUT", "http://h/", strings.NewReader("held"))
		req.Header.Set("Expect", "100-continue")
		ch := roundTripAsync(rt, req)
		expectWire(t, peer, "PUT / HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\nHost: h\r\n\r\n")
		peer.Close()
		select {
		case r := <-ch:
			require.Error(t, r.err)
		case <-time.After(testTimeout):
			t.Fatal("RoundTrip hangs on its waiting body writer")
		}
	})
	t.Run("early response while the body blocks", func(t *testing.T) {
		rt, peer := rtPair(t)
		pr, pw := io.Pipe() // a body that never comes
		defer pw.Close()
		ch := roundTripAsync(rt, newReq(t, "POST", "http://h/", pr))
		expectWire(t, peer, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: h\r\n\r\n")
		send(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		r := <-ch
		require.NoError(t, r.err)
		require.Equal(t, "ok", readAllString(t, r.res.Body), "body")
		// The unfinished request leaves the connection unusable, and the body was closed to stop its writer.
		require.Equal(t, false, rt.Socket.IsOpen(), "socket closed")
		_, err := pw.Write([]byte("x"))
		require.ErrorIs(t, err, io.ErrClosedPipe)
	})
	t.Run("Close unblocks a Read", func(t *testing.T) {
		rt, peer := rtPair(t)
		ch := roundTripAsync(rt, newReq(t, "GET", "http://h/", nil))
		expectWire(t, peer, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		send(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n") // and then nothing
		r := <-ch
		require.NoError(t, r.err)
		readErr := make(chan error, 1)
		go func() {
			_, err := r.res.Body.Read(make([]byte, 10))
			readErr <- err
		}()
		expectSilence(t, peer) // let the Read block
		require.NoError(t, r.res.Body.Close())
		select {
		case err := <-readErr:
			require.ErrorIs(t, err, http.ErrBodyReadAfterClose)
		case <-time.After(testTimeout):
			t.Fatal("Close did not unblock the Read")
		}
		require.Equal(t, false, rt.Socket.IsOpen(), "socket closed")
	})
	t.Run("invalid request", func(t *testing.T) {
		rt, _ := rtPair(t)
		_, err := rt.RoundTrip(&http.Request{Method: "GET", Header: http.Header{}})
		require.Error(t, err, "nil URL accepted")
		_, err = rt.RoundTrip(&http.Request{Method: "BAD METHOD", URL: mustURL(t, "http://h/"), Header: http.Header{}})
		require.Error(t, err, "invalid method accepted")
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func TestRoundTripExpectContinueWire(t *testing.T) {
	c, peer := tcpPair(t)
	rt := &RoundTripper{Socket: symsock.New(c), ExpectContinueTimeout: time.Hour} // only the 100 can release the body
	var got100 atomic.Bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got100Continue: func() { got100.Store(true) }})
	req := newReq(t, "PUT", "http://h/up", strings.NewReader("payload"))
	req.Header.Set("Expect", "100-continue")
	ch := roundTripAsync(rt, req.WithContext(ctx))
	expectWire(t, peer, "PUT /up HTTP/1.1\r\nContent-Length: 7\r\nExpect: 100-continue\r\nHost: h\r\n\r\n")
	expectSilence(t, peer) // the body waits for the server
	send(t, peer, "HTTP/1.1 100 Continue\r\n\r\n")
	expectWire(t, peer, "payload")
	send(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	r := <-ch
	require.NoError(t, r.err)
	require.Equal(t, true, got100.Load(), "Got100Continue")
	require.Equal(t, "ok", readAllString(t, r.res.Body), "body")

	// A final answer instead of 100: a chunked body is ended empty and the connection stays usable.
	req = newReq(t, "PUT", "http://h/up", opaqueReader{strings.NewReader("never sent")})
	req.Header.Set("Expect", "100-continue")
	ch = roundTripAsync(rt, req)
	expectWire(t, peer, "PUT /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nHost: h\r\n\r\n")
	send(t, peer, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
	r = <-ch
	require.NoError(t, r.err)
	require.Equal(t, 413, r.res.StatusCode, "status")
	expectWire(t, peer, "0\r\n\r\n")
	require.Equal(t, true, rt.Socket.IsOpen(), "socket open")
}
