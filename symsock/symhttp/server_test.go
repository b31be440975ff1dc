package symhttp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/symsock"
)

// serveConn runs Serve(h) on the socket end of a loopback pair and returns the raw peer, a reader over it and
// Serve's result.
func serveConn(t *testing.T, h http.Handler) (net.Conn, *bufio.Reader, <-chan error) {
	t.Helper()
	c, peer := tcpPair(t)
	done := make(chan error, 1)
	go func() { done <- Serve(symsock.New(c), h) }()
	return peer, bufio.NewReader(peer), done
}

// serveResult waits for Serve to return.
func serveResult(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return")
		return nil
	}
}

// readResponse parses one response with net/http's own parser and reads its body whole.
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(body)
}

// expectEOF asserts that the server closed the connection with nothing more to say.
func expectEOF(t *testing.T, br *bufio.Reader) {
	t.Helper()
	rest, err := io.ReadAll(br)
	require.NoError(t, err, "want the connection closed")
	require.Empty(t, rest, "want the connection closed")
}

// rawHead reads a response head as raw text (to assert framing fields net/http's parser would hide).
func rawHead(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		sb.WriteString(line)
		if line == "\r\n" {
			return sb.String()
		}
	}
}

func TestServeRequestFields(t *testing.T) {
	got := make(chan *http.Request, 1)
	var ctx context.Context
	peer, br, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx = r.Context()
		assert.NoError(t, ctx.Err(), "request context cancelled during the handler")
		got <- r
		_, _ = io.WriteString(w, "ok")
	}))
	send(t, peer, "GET /a/b?x=1&y=%20z HTTP/1.1\r\nHost: example.test:8080\r\nX-One: 1\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	r := <-got
	require.Equal(t, 200, res.StatusCode, "status")
	require.Equal(t, "ok", body, "body")
	require.Equal(t, "GET", r.Method, "method")
	require.Equal(t, "/a/b?x=1&y=%20z", r.RequestURI, "RequestURI")
	require.Equal(t, "/a/b", r.URL.Path, "URL.Path")
	require.Equal(t, " z", r.URL.Query().Get("y"), "query y")
	require.Equal(t, "example.test:8080", r.Host, "Host")
	require.Equal(t, "", r.Header.Get("Host"), "Host header removed")
	require.Equal(t, "HTTP/1.1", r.Proto, "Proto")
	require.Equal(t, 1, r.ProtoMinor, "ProtoMinor")
	require.Equal(t, "1", r.Header.Get("X-One"), "X-One")
	require.Equal(t, "a,b", strings.Join(r.Header.Values("X-Multi"), ","), "X-Multi")
	require.Equal(t, int64(0), r.ContentLength, "ContentLength")
	require.Equal(t, io.ReadCloser(http.NoBody), r.Body, "Body is NoBody")
	require.Equal(t, peer.LocalAddr().String(), r.RemoteAddr, "RemoteAddr")
	require.Equal(t, false, r.Close, "Close")
	assert.Error(t, ctx.Err(), "request context not cancelled after the handler returned")
	peer.Close()
	require.NoError(t, serveResult(t, done))
}

func TestServeTargets(t *testing.T) {
	// The fast path must give what url.ParseRequestURI gives.
	for _, target := range []string{"/", "/a/b/", "/a;b=c/d:e@f$g&h+i,j", "/%41b", "/a!b", "/a'b(c)*", "/x?q=1#",
		"*", "http://h.test/p?q", "//double/slash", "/?", "/a?b?c"} {
		want, wantErr := url.ParseRequestURI(target)
		var got url.URL
		err := parseTarget("GET", target, &got)
		if wantErr != nil {
			require.Error(t, err, "%q: want %v", target, wantErr)
			continue
		}
		require.NoError(t, err, "%q", target)
		assert.Equal(t, *want, got, "%q", target)
	}
	var u url.URL
	require.NoError(t, parseTarget("CONNECT", "h.test:443", &u))
	require.Equal(t, "h.test:443", u.Host, "CONNECT host")
}

func TestServeSmallResponseHasContentLength(t *testing.T) {
	peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<html><body>hi</body></html>")
	}))
	send(t, peer, r0)
	head := rawHead(t, br)
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "\r\nContent-Length: 28\r\n", "\r\nContent-Type: text/html; charset=utf-8\r\n", "\r\nDate: "} {
		assert.Contains(t, "\r\n"+head, want, "head")
	}
	assert.NotContains(t, head, "Transfer-Encoding", "small response is chunked")
}

func TestServeExactWire(t *testing.T) {
	// Date suppressed with a nil value, like net/http.
	peer, _, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(201)
		_, _ = io.WriteString(w, "made")
	}))
	send(t, peer, r0)
	expectWire(t, peer, "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nmade")
}

func TestServeFlusherStreamsChunked(t *testing.T) {
	step := make(chan struct{})
	peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-step // the client must have the first piece before the handler goes on
		_, _ = io.WriteString(w, "second\n")
	}))
	send(t, peer, r0)
	res, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	require.NoError(t, err)
	require.Equal(t, "chunked", strings.Join(res.TransferEncoding, ","), "TransferEncoding")
	require.Equal(t, int64(-1), res.ContentLength, "ContentLength")
	first := make([]byte, 6)
	_, err = io.ReadFull(res.Body, first)
	require.NoError(t, err)
	require.Equal(t, "first\n", string(first), "first piece")
	close(step)
	rest, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, "second\n", string(rest), "rest")
}

func TestServeLargeResponseStreams(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cl" {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		}
		_, _ = io.WriteString(w, big)
	}))
	send(t, peer, "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	require.Equal(t, "chunked", strings.Join(res.TransferEncoding, ","), "chunked")
	require.Equal(t, true, body == big, "body")
	send(t, peer, "GET /cl HTTP/1.1\r\nHost: a\r\n\r\n")
	res, body = readResponse(t, br, "GET")
	require.Equal(t, 0, len(res.TransferEncoding), "identity")
	require.Equal(t, int64(len(big)), res.ContentLength, "ContentLength")
	require.Equal(t, true, body == big, "body")
}

func TestServeTrailers(t *testing.T) {
	peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/declared":
			w.Header().Set("Trailer", "X-Sum, X-Count")
			_, _ = io.WriteString(w, "data")
			w.Header().Set("X-Sum", "abc")
			w.Header().Set("X-Count", "4")
		case "/prefix":
			_, _ = io.WriteString(w, "data")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		case "/flushed":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "da")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "ta")
			w.Header().Set("X-Sum", "def")
		}
	}))
	for _, tc := range []struct{ path, name, value string }{
		{"/declared", "X-Sum", "abc"}, {"/declared", "X-Count", "4"}, {"/prefix", "X-Late", "yes"}, {"/flushed", "X-Sum", "def"},
	} {
		send(t, peer, "GET "+tc.path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		res, body := readResponse(t, br, "GET")
		require.Equal(t, "data", body, tc.path+" body")
		require.Equal(t, "chunked", strings.Join(res.TransferEncoding, ","), tc.path+" chunked")
		require.Equal(t, tc.value, res.Trailer.Get(tc.name), tc.path+" trailer "+tc.name)
		assert.Empty(t, res.Header.Get("X-Late"), "%s: trailer leaked into the header: %v", tc.path, res.Header)
		assert.Empty(t, res.Header.Get(http.TrailerPrefix+"X-Late"), "%s: trailer leaked into the header: %v", tc.path, res.Header)
	}
}

func TestServeHEAD(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			_, _ = io.WriteString(w, "hello")
		case "/big":
			_, _ = io.WriteString(w, strings.Repeat("x", 100<<10))
		case "/declared":
			w.Header().Set("Content-Length", "12345")
		case "/silent":
		}
	})
	peer, br, _ := serveConn(t, h)
	for _, tc := range []struct {
		path string
		cl   string // "" = no Content-Length header
	}{{"/small", "5"}, {"/big", ""}, {"/declared", "12345"}, {"/silent", ""}} {
		send(t, peer, "HEAD "+tc.path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		head := rawHead(t, br)
		if tc.cl != "" {
			assert.Contains(t, head, "\r\nContent-Length: "+tc.cl+"\r\n", tc.path)
		} else {
			assert.NotContains(t, head, "Content-Length", tc.path)
		}
		assert.NotContains(t, head, "Transfer-Encoding", "%s: HEAD reply", tc.path)
	}
	// No body bytes came after any head: the next response starts right away.
	send(t, peer, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
	_, body := readResponse(t, br, "GET")
	require.Equal(t, "hello", body, "GET after HEADs")
}

func TestServeNoContentAndNotModified(t *testing.T) {
	writeErr := make(chan error, 2)
	peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "3")
		switch r.URL.Path {
		case "/ok":
			w.Header().Del("Content-Length")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		}
		_, err := io.WriteString(w, "abc")
		writeErr <- err
	}))
	send(t, peer, "GET /204 HTTP/1.1\r\nHost: a\r\n\r\n")
	expectWire(t, peer, "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n")
	require.ErrorIs(t, <-writeErr, http.ErrBodyNotAllowed)
	send(t, peer, "GET /304 HTTP/1.1\r\nHost: a\r\n\r\n")
	expectWire(t, peer, "HTTP/1.1 304 Not Modified\r\nEtag: \"v1\"\r\n\r\n")
	require.ErrorIs(t, <-writeErr, http.ErrBodyNotAllowed)
	send(t, peer, "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	require.Equal(t, 200, res.StatusCode, "keep-alive after 204/304")
	require.Equal(t, "abc", body, "body")
	<-writeErr
}

func TestServeConnectionClose(t *testing.T) {
	t.Run("request", func(t *testing.T) {
		peer, br, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			assert.True(t, r.Close, "Request.Close false for Connection: close")
			_, _ = io.WriteString(w, "bye")
		}))
		send(t, peer, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		res, body := readResponse(t, br, "GET")
		require.Equal(t, "bye", body, "body")
		require.Equal(t, true, res.Close, "res.Close")
		expectEOF(t, br)
		require.NoError(t, serveResult(t, done))
	})
	t.Run("handler", func(t *testing.T) {
		peer, br, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		}))
		send(t, peer, r0+r0) // the second request is never answered
		res, _ := readResponse(t, br, "GET")
		require.Equal(t, true, res.Close, "res.Close")
		expectEOF(t, br)
		require.NoError(t, serveResult(t, done))
	})
}

func TestServeHTTP10(t *testing.T) {
	big := strings.Repeat("y", 50<<10) // over the response buffer: a 1.0 client still gets a Content-Length
	peer, br, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "HTTP/1.0", r.Proto, "Proto")
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big[:10])
			w.(http.Flusher).Flush() // cannot stream to 1.0: no effect
			_, _ = io.WriteString(w, big[10:])
			w.Header().Set(http.TrailerPrefix+"X-T", "dropped")
			return
		}
		_, _ = io.WriteString(w, "old")
	}))
	send(t, peer, "GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	head := rawHead(t, br)
	require.True(t, strings.HasPrefix(head, "HTTP/1.0 200 OK\r\n"), "1.0 head %q", head)
	require.Contains(t, head, fmt.Sprintf("\r\nContent-Length: %d\r\n", len(big)), "1.0 head")
	require.NotContains(t, head, "chunked", "1.0 head")
	body := make([]byte, len(big))
	_, err := io.ReadFull(br, body)
	require.NoError(t, err)
	require.Equal(t, true, string(body) == big, "body")
	send(t, peer, "GET / HTTP/1.0\r\n\r\n")
	res, b := readResponse(t, br, "GET")
	require.Equal(t, 200, res.StatusCode, "status")
	require.Equal(t, "old", b, "body")
	expectEOF(t, br)
	require.NoError(t, serveResult(t, done))
}

func TestServePipelined(t *testing.T) {
	peer, br, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %q", r.Method, r.URL.Path, b)
	}))
	send(t, peer, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"+
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nping"+
		"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"+
		"GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	for _, want := range []string{`GET /1 ""`, `POST /2 "ping"`, `POST /3 "hi"`, `GET /4 ""`} {
		_, body := readResponse(t, br, "GET")
		require.Equal(t, want, body, "response")
	}
	expectEOF(t, br)
	require.NoError(t, serveResult(t, done))
}

func TestServeRequestBody(t *testing.T) {
	type seen struct {
		body    string
		cl      int64
		te      string
		trailer string
	}
	got := make(chan seen, 1)
	peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s seen
		if r.Trailer != nil {
			assert.Contains(t, r.Trailer, "X-Digest", "declared trailer missing from Request.Trailer before the body is read")
		}
		b, err := io.ReadAll(r.Body)
		assert.NoError(t, err)
		s.body, s.cl, s.te, s.trailer = string(b), r.ContentLength, strings.Join(r.TransferEncoding, ","), r.Trailer.Get("X-Digest")
		_, err = r.Body.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF)
		got <- s
	}))
	send(t, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
	readResponse(t, br, "POST")
	require.Equal(t, seen{"hello world", 11, "", ""}, <-got, "CL body")
	send(t, peer, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Digest\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Digest: d1\r\n\r\n")
	readResponse(t, br, "POST")
	require.Equal(t, seen{"hello world", -1, "chunked", "d1"}, <-got, "chunked body")
}

func TestServeUnreadBodyKeepsFraming(t *testing.T) {
	peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path) // never reads the body
	}))
	send(t, peer, "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nGET /"+
		"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/1", "/2"} {
		_, body := readResponse(t, br, "GET")
		require.Equal(t, want, body, "body")
	}
}

func TestServeUnreadLargeBodyCloses(t *testing.T) {
	peer, br, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "early")
	}))
	// Known to exceed the discard limit: the response itself says the connection closes.
	send(t, peer, fmt.Sprintf("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", symsock.DefaultDiscardLimit+1))
	res, body := readResponse(t, br, "POST")
	require.Equal(t, "early", body, "body")
	require.Equal(t, true, res.Close, "close")
	require.NoError(t, serveResult(t, done))

	// Unknown (chunked) length: drained up to the limit, then the connection is closed quietly.
	peer, br, done = serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "early")
	}))
	send(t, peer, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
	_, body = readResponse(t, br, "POST")
	require.Equal(t, "early", body, "body")
	go func() {
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("x", 64<<10))
		for range 2 * symsock.DefaultDiscardLimit / (64 << 10) {
			if _, err := io.WriteString(peer, chunk); err != nil {
				return
			}
		}
	}()
	require.NoError(t, serveResult(t, done))
}

func TestServeExpectContinue(t *testing.T) {
	t.Run("read", func(t *testing.T) {
		peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		}))
		send(t, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
		// The 100 comes before the body is sent.
		expectWire(t, peer, "HTTP/1.1 100 Continue\r\n\r\n")
		send(t, peer, "data")
		res, body := readResponse(t, br, "POST")
		require.Equal(t, "data", body, "body")
		require.Equal(t, false, res.Close, "keep-alive")
	})
	t.Run("unread", func(t *testing.T) {
		peer, br, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusUnauthorized)
		}))
		send(t, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
		res, _ := readResponse(t, br, "POST")
		require.Equal(t, 401, res.StatusCode, "status (no 100 first)")
		require.Equal(t, true, res.Close, "close: the body was never asked for")
		expectEOF(t, br)
		require.NoError(t, serveResult(t, done))
	})
	t.Run("WriteHeader100", func(t *testing.T) {
		peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusContinue)
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		}))
		send(t, peer, "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
		expectWire(t, peer, "HTTP/1.1 100 Continue\r\n\r\n")
		send(t, peer, "ok")
		_, body := readResponse(t, br, "PUT")
		require.Equal(t, "ok", body, "body")
	})
}

func TestServePanic(t *testing.T) {
	quiet := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/early":
			panic("boom")
		case "/late":
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic("boom")
		case "/abort":
			panic(http.ErrAbortHandler)
		}
	})
	srv := &Server{Handler: quiet, Logger: slog.New(slog.DiscardHandler)}
	run := func(t *testing.T, path string) (*bufio.Reader, error) {
		c, peer := tcpPair(t)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background(), symsock.New(c)) }()
		send(t, peer, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		return bufio.NewReader(peer), serveResult(t, done)
	}
	br, err := run(t, "/early")
	require.ErrorIs(t, err, ErrHandlerPanic)
	res, _ := readResponse(t, br, "GET")
	require.Equal(t, 500, res.StatusCode, "status")
	require.Equal(t, true, res.Close, "close")
	expectEOF(t, br)

	br, err = run(t, "/late")
	require.ErrorIs(t, err, ErrHandlerPanic)
	res, err = http.ReadResponse(br, &http.Request{Method: "GET"})
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, "status")
	_, err = io.ReadAll(res.Body)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF) // truncated chunked body: the client knows it is incomplete

	_, err = run(t, "/abort")
	require.ErrorIs(t, err, http.ErrAbortHandler)
}

func TestServeContentLengthMismatch(t *testing.T) {
	peer, br, done := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		_, err := io.WriteString(w, "0123456789A")
		assert.ErrorIs(t, err, http.ErrContentLength)
		_, _ = io.WriteString(w, "short")
	}))
	send(t, peer, r0)
	err := serveResult(t, done)
	require.ErrorIs(t, err, ErrShortResponse)
	// Nothing was committed: the client gets a 500 rather than a truncated body.
	res, _ := readResponse(t, br, "GET")
	require.Equal(t, 500, res.StatusCode, "status")
	expectEOF(t, br)
}

func TestServeMalformedRequest(t *testing.T) {
	peer, br, done := serveConn(t, http.NotFoundHandler())
	send(t, peer, "GET / HTTP/1.1\r\n\r\n")
	res, _ := readResponse(t, br, "GET")
	require.Equal(t, 400, res.StatusCode, "status")
	require.ErrorIs(t, serveResult(t, done), symsock.ErrParsing)
}

func TestServeContextAndTimeouts(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		c, peer := tcpPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		entered := make(chan struct{})
		done := make(chan error, 1)
		srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done() // ended by the cancellation of Serve's context
		})}
		go func() { done <- srv.Serve(ctx, symsock.New(c)) }()
		send(t, peer, r0)
		<-entered
		cancel()
		require.ErrorIs(t, serveResult(t, done), context.Canceled)
		expectEOF(t, bufio.NewReader(peer))
	})
	t.Run("idle", func(t *testing.T) {
		c, peer := tcpPair(t)
		done := make(chan error, 1)
		srv := &Server{Handler: http.NotFoundHandler(), IdleTimeout: 50 * time.Millisecond, ReadHeaderTimeout: testTimeout}
		go func() { done <- srv.Serve(context.Background(), symsock.New(c)) }()
		send(t, peer, r0)
		br := bufio.NewReader(peer)
		readResponse(t, br, "GET")
		require.NoError(t, serveResult(t, done)) // the idle keep-alive connection is closed quietly
		expectEOF(t, br)
	})
}

func TestServeCleanClose(t *testing.T) {
	peer, _, done := serveConn(t, http.NotFoundHandler())
	peer.Close()
	require.NoError(t, serveResult(t, done))
	err := Serve(symsock.New(&halfConn{}), http.NotFoundHandler())
	require.Error(t, err, "EOF inside a request")
	require.NotErrorIs(t, err, io.EOF, "EOF inside a request")
}

// halfConn is a net.Conn that delivers half a request and then EOF.
type halfConn struct {
	net.Conn
	done bool
}

func (h *halfConn) Read(p []byte) (int, error) {
	if h.done {
		return 0, io.EOF
	}
	h.done = true
	return copy(p, "GET / HTTP/1.1\r\nHo"), nil
}
func (h *halfConn) Write(p []byte) (int, error) { return len(p), nil }
func (h *halfConn) Close() error                { return nil }
func (h *halfConn) RemoteAddr() net.Addr        { return &net.TCPAddr{} }
func (h *halfConn) SetReadDeadline(time.Time) error {
	return nil
}

func TestServeLargeWritesBoundedMemory(t *testing.T) {
	const size = 16 << 20
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	text := string(payload)
	peer, br, _ := serveConn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cl":
			w.Header().Set("Content-Length", fmt.Sprint(size))
			_, _ = w.Write(payload)
		case "/string":
			_, _ = io.WriteString(w, text)
		default:
			_, _ = w.Write(payload)
		}
	}))
	for _, path := range []string{"/chunked", "/cl", "/string"} {
		var got int64
		grew := heapGrowth(func() {
			send(t, peer, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
			res, err := http.ReadResponse(br, &http.Request{Method: "GET"})
			require.NoError(t, err)
			got, err = io.Copy(io.Discard, res.Body)
			require.NoError(t, err)
		})
		require.Equal(t, int64(size), got, path+" body size")
		// One write of 16 MiB is streamed from the handler's memory, not copied into a buffer of its size.
		require.LessOrEqual(t, grew, uint64(2<<20), "%s: serving a %d-byte write allocated %d bytes", path, size, grew)
	}
}

// writeLog is a net.Conn that records each Write, to show how a response goes onto the transport.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes []string
}

func (l *writeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.writes = append(l.writes, string(p))
	l.mu.Unlock()
	return l.Conn.Write(p)
}

func (l *writeLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.writes
	l.writes = nil
	return w
}

// A reverse proxy flushes after every write: a body that completes its Content-Length before the flush goes out
// with its head in one write (one datagram on a packet transport), and the response is over; a body still short
// of it is streamed after a head of its own.
func TestServeFlushOfACompleteBodySendsOneWrite(t *testing.T) {
	c, peer := tcpPair(t)
	wl := &writeLog{Conn: c}
	afterFlush := make(chan error, 3)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		w.Header().Set("Content-Type", "text/plain")
		switch r.URL.Path {
		case "/whole":
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
			afterFlush <- http.NewResponseController(w).Flush()
			_, err := io.WriteString(w, "!")
			afterFlush <- err
			afterFlush <- http.NewResponseController(w).Flush()
		case "/part":
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "hello")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "world")
		}
	})
	go func() { _ = Serve(symsock.New(wl), h) }()

	send(t, peer, "GET /whole HTTP/1.1\r\nHost: a\r\n\r\n")
	const whole = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
	expectWire(t, peer, whole)
	require.NoError(t, <-afterFlush, "the flush")
	assert.ErrorIs(t, <-afterFlush, http.ErrContentLength, "a write past the Content-Length after the flush")
	assert.NoError(t, <-afterFlush, "a second flush does nothing")

	send(t, peer, "GET /part HTTP/1.1\r\nHost: a\r\n\r\n")
	expectWire(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Type: text/plain\r\n\r\nhelloworld")
	assert.Equal(t, []string{whole, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Type: text/plain\r\n\r\n", "hello", "world"},
		wl.take(), "the writes of the two responses")
}
