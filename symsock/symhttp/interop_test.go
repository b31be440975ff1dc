package symhttp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/symsock"
)

// Interoperability with net/http over loopback TCP, both ways: a symsock server (Serve, or the raw socket API)
// answering net/http's client, and a symsock client (NewRoundTripper, or the raw socket API) talking to an
// httptest.Server.

// symsockServer serves every connection accepted on a loopback listener with a function of the socket and counts
// the connections.
type symsockServer struct {
	URL      string
	accepted atomic.Int32
}

func startSymsockServer(t *testing.T, h http.Handler) *symsockServer {
	return startSymsockServerFunc(t, func(s *symsock.Socket) error { return Serve(s, h) })
}

func startSymsockServerFunc(tb testing.TB, serve func(*symsock.Socket) error) *symsockServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	srv := &symsockServer{URL: "http://" + ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := serve(symsock.New(c)); err != nil && !errors.Is(err, net.ErrClosed) {
					tb.Logf("serve: %v", err)
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return srv
}

// netHTTPClient is a net/http client with its own connection pool.
func netHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{ExpectContinueTimeout: testTimeout, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

func get(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(b)
}

func newReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	return req
}

// opaqueReader hides the length of a reader so that net/http sends it chunked.
type opaqueReader struct{ r io.Reader }

func (o opaqueReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// echoHandler answers with the request body, its framing, and its trailers as response trailers.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("X-Got-Length", fmt.Sprint(r.ContentLength))
	w.Header().Set("X-Got-TE", strings.Join(r.TransferEncoding, ","))
	w.Header().Set("X-Got-Proto", r.Proto)
	if len(r.Trailer) > 0 {
		w.Header().Set("Trailer", "X-Echo-Trailer")
	}
	_, _ = w.Write(b)
	if v := r.Trailer.Get("X-Req-Trailer"); v != "" {
		w.Header().Set("X-Echo-Trailer", v)
	}
}

func TestInteropServerNetHTTPClient(t *testing.T) {
	big := strings.Repeat("big body ", 100<<10)
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echoHandler)
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, big) })
	srv := startSymsockServer(t, mux)
	c := netHTTPClient(t)

	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	do := func(req *http.Request) (*http.Response, string) {
		return get(t, c, req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	}

	res, body := do(newReq(t, "POST", srv.URL+"/echo", strings.NewReader("content-length body")))
	require.Equal(t, "content-length body", body, "CL echo")
	require.Equal(t, "19", res.Header.Get("X-Got-Length"), "server saw length")
	require.Equal(t, int64(19), res.ContentLength, "response length")

	res, body = do(newReq(t, "POST", srv.URL+"/echo", opaqueReader{strings.NewReader("chunked body")}))
	require.Equal(t, "chunked body", body, "chunked echo")
	require.Equal(t, "chunked", res.Header.Get("X-Got-TE"), "server saw chunked")
	require.Equal(t, "-1", res.Header.Get("X-Got-Length"), "server saw length")

	res, body = do(newReq(t, "GET", srv.URL+"/big", nil))
	require.Equal(t, true, body == big, "big body")
	require.Equal(t, "chunked", strings.Join(res.TransferEncoding, ","), "big is chunked")

	req := newReq(t, "POST", srv.URL+"/echo", opaqueReader{strings.NewReader("with trailers")})
	req.Trailer = http.Header{"X-Req-Trailer": nil}
	req.Body = io.NopCloser(&trailerSetter{r: strings.NewReader("with trailers"), set: func() { req.Trailer.Set("X-Req-Trailer", "t1") }})
	res, body = do(req)
	require.Equal(t, "with trailers", body, "trailer echo body")
	require.Equal(t, "t1", res.Trailer.Get("X-Echo-Trailer"), "response trailer from request trailer")

	require.Equal(t, int32(1), srv.accepted.Load(), "connections")
	require.Equal(t, "[false true true true]", fmt.Sprint(reused), "reuse")
}

// trailerSetter calls set when r is exhausted: request trailers are final only once the body is read (net/http).
type trailerSetter struct {
	r   io.Reader
	set func()
}

func (ts *trailerSetter) Read(p []byte) (int, error) {
	n, err := ts.r.Read(p)
	if err == io.EOF && ts.set != nil {
		ts.set()
		ts.set = nil
	}
	return n, err
}

func TestInteropServerExpectContinue(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echoHandler)
	mux.HandleFunc("/deny", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "denied", http.StatusUnauthorized)
	})
	srv := startSymsockServer(t, mux)
	c := netHTTPClient(t)
	var got100 atomic.Bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got100Continue: func() { got100.Store(true) }})

	req := newReq(t, "PUT", srv.URL+"/echo", strings.NewReader("after continue"))
	req.Header.Set("Expect", "100-continue")
	res, body := get(t, c, req.WithContext(ctx))
	require.Equal(t, true, got100.Load(), "got 100 Continue")
	require.Equal(t, "after continue", body, "body")
	require.Equal(t, 200, res.StatusCode, "status")

	got100.Store(false)
	sent := &countingReader{r: strings.NewReader(strings.Repeat("z", 1<<20))}
	req = newReq(t, "PUT", srv.URL+"/deny", io.NopCloser(sent))
	req.ContentLength = 1 << 20
	req.Header.Set("Expect", "100-continue")
	res, _ = get(t, c, req.WithContext(ctx))
	require.Equal(t, 401, res.StatusCode, "status")
	require.Equal(t, false, got100.Load(), "no 100 for a denied request")
	require.Equal(t, int64(0), sent.n.Load(), "body bytes sent")
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestInteropServerFileServer(t *testing.T) {
	dir := t.TempDir()
	content := make([]byte, 200<<10)
	for i := range content {
		content[i] = byte(i * 7)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data.bin"), content, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>index</p>"), 0o644))
	srv := startSymsockServer(t, http.FileServer(http.Dir(dir)))
	c := netHTTPClient(t)

	res, body := get(t, c, newReq(t, "GET", srv.URL+"/data.bin", nil))
	require.Equal(t, true, body == string(content), "whole file")
	require.Equal(t, int64(len(content)), res.ContentLength, "Content-Length")
	require.Equal(t, "bytes", res.Header.Get("Accept-Ranges"), "Accept-Ranges")

	req := newReq(t, "GET", srv.URL+"/data.bin", nil)
	req.Header.Set("Range", "bytes=1000-1999")
	res, body = get(t, c, req)
	require.Equal(t, http.StatusPartialContent, res.StatusCode, "range status")
	require.Equal(t, fmt.Sprintf("bytes 1000-1999/%d", len(content)), res.Header.Get("Content-Range"), "Content-Range")
	require.Equal(t, true, body == string(content[1000:2000]), "range body")

	req = newReq(t, "GET", srv.URL+"/data.bin", nil)
	req.Header.Set("Range", "bytes=0-9,-10")
	res, body = get(t, c, req)
	require.Equal(t, http.StatusPartialContent, res.StatusCode, "multi-range status")
	mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/byteranges", mt, "multipart")
	mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
	for _, want := range [][]byte{content[:10], content[len(content)-10:]} {
		p, err := mr.NextPart()
		require.NoError(t, err)
		got, err := io.ReadAll(p)
		require.NoError(t, err)
		require.Equal(t, true, bytes.Equal(got, want), "part")
	}

	res, body = get(t, c, newReq(t, "HEAD", srv.URL+"/data.bin", nil))
	require.Equal(t, int64(len(content)), res.ContentLength, "HEAD length")
	require.Equal(t, "", body, "HEAD body")

	req = newReq(t, "GET", srv.URL+"/data.bin", nil)
	req.Header.Set("If-Modified-Since", res.Header.Get("Last-Modified"))
	res, body = get(t, c, req)
	require.Equal(t, http.StatusNotModified, res.StatusCode, "304")
	require.Equal(t, "", body, "304 body")

	res, body = get(t, c, newReq(t, "GET", srv.URL+"/", nil))
	require.Equal(t, "<p>index</p>", body, "index")
	require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"), "index type")
	require.Equal(t, int32(1), srv.accepted.Load(), "one connection")
}

func TestInteropServerStatusesAndClose(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "closing")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "root") })
	srv := startSymsockServer(t, mux)
	c := netHTTPClient(t)

	res, body := get(t, c, newReq(t, "GET", srv.URL+"/204", nil))
	require.Equal(t, 204, res.StatusCode, "204")
	require.Equal(t, "", body, "204 body")
	_, body = get(t, c, newReq(t, "GET", srv.URL+"/", nil))
	require.Equal(t, "root", body, "after 204")
	require.Equal(t, int32(1), srv.accepted.Load(), "connections")

	res, _ = get(t, c, newReq(t, "GET", srv.URL+"/close", nil))
	require.Equal(t, true, res.Close, "server close")
	get(t, c, newReq(t, "GET", srv.URL+"/", nil))
	require.Equal(t, int32(2), srv.accepted.Load(), "new connection after server close")

	req := newReq(t, "GET", srv.URL+"/", nil)
	req.Close = true
	res, _ = get(t, c, req)
	require.Equal(t, true, res.Close, "client close")
	get(t, c, newReq(t, "GET", srv.URL+"/", nil))
	require.Equal(t, int32(3), srv.accepted.Load(), "new connection after client close")
}

func TestInteropServerFlushStreaming(t *testing.T) {
	step := make(chan struct{})
	srv := startSymsockServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_, _ = io.WriteString(w, "tick 1\n")
		assert.NoError(t, rc.Flush())
		<-step
		_, _ = io.WriteString(w, "tick 2\n")
	}))
	res, err := netHTTPClient(t).Get(srv.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "tick 1\n", line, "first line before the handler finished")
	close(step)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	require.Equal(t, "tick 2\n", string(rest), "rest")
}

// TestInteropRawServerNetHTTPClient answers net/http's client with the socket's own API.
func TestInteropRawServerNetHTTPClient(t *testing.T) {
	srv := startSymsockServerFunc(t, func(s *symsock.Socket) error {
		return rawServe(s, func(req *symsock.Request, res *symsock.Response) {
			*res = symsock.Response{Status: 200, Header: http.Header{"X-Method": {req.Method}}, Body: append([]byte(req.Target+" "), req.Body...)}
		})
	})
	c := netHTTPClient(t)
	for i := range 3 {
		res, body := get(t, c, newReq(t, "POST", fmt.Sprintf("%s/r%d", srv.URL, i), strings.NewReader("payload")))
		require.Equal(t, fmt.Sprintf("/r%d payload", i), body, "body")
		require.Equal(t, "POST", res.Header.Get("X-Method"), "method")
	}
	require.Equal(t, int32(1), srv.accepted.Load(), "connections")
}

// roundTripClient dials srv and returns an http.Client whose transport is a RoundTripper over that connection.
func roundTripClient(t *testing.T, srv *httptest.Server) (*http.Client, *symsock.Socket) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	s := symsock.New(conn)
	t.Cleanup(func() { s.Close() })
	return &http.Client{Transport: NewRoundTripper(s), Timeout: testTimeout}, s
}

// countingServer is an httptest.Server that counts the connections it accepted.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int32) {
	srv := httptest.NewUnstartedServer(h)
	var n atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestInteropClientHTTPTestServer(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echoHandler)
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Done")
		for i := range 3 {
			fmt.Fprintf(w, "part %d\n", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Done", "yes")
	})
	mux.HandleFunc("/204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f.txt", time.Unix(1700000000, 0), strings.NewReader("file content"))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/file", http.StatusFound) })
	srv, conns := countingServer(t, mux)
	c, _ := roundTripClient(t, srv)

	res, body := get(t, c, newReq(t, "POST", srv.URL+"/echo", strings.NewReader("small")))
	require.Equal(t, "small", body, "CL echo")
	require.Equal(t, "5", res.Header.Get("X-Got-Length"), "server saw CL")

	big := strings.Repeat("L", 300<<10) // over the one-write limit: streamed with its Content-Length
	res, body = get(t, c, newReq(t, "POST", srv.URL+"/echo", strings.NewReader(big)))
	require.Equal(t, true, body == big, "big CL echo")
	require.Equal(t, fmt.Sprint(len(big)), res.Header.Get("X-Got-Length"), "server saw big CL")

	res, body = get(t, c, newReq(t, "POST", srv.URL+"/echo", opaqueReader{strings.NewReader("unknown length")}))
	require.Equal(t, "unknown length", body, "chunked echo")
	require.Equal(t, "chunked", res.Header.Get("X-Got-TE"), "server saw chunked")

	req := newReq(t, "POST", srv.URL+"/echo", nil)
	req.Trailer = http.Header{"X-Req-Trailer": nil}
	req.Body = io.NopCloser(&trailerSetter{r: strings.NewReader("trailing"), set: func() { req.Trailer.Set("X-Req-Trailer", "rt") }})
	req.ContentLength = -1
	res, body = get(t, c, req)
	require.Equal(t, "trailing", body, "trailer body")
	require.Equal(t, "rt", res.Trailer.Get("X-Echo-Trailer"), "request trailer reached the server")

	res, body = get(t, c, newReq(t, "GET", srv.URL+"/stream", nil))
	require.Equal(t, "part 0\npart 1\npart 2\n", body, "stream")
	require.Equal(t, "chunked", strings.Join(res.TransferEncoding, ","), "chunked")
	require.Equal(t, "yes", res.Trailer.Get("X-Done"), "response trailer")

	res, body = get(t, c, newReq(t, "HEAD", srv.URL+"/file", nil))
	require.Equal(t, int64(len("file content")), res.ContentLength, "HEAD length")
	require.Equal(t, "", body, "HEAD body")

	res, body = get(t, c, newReq(t, "GET", srv.URL+"/204", nil))
	require.Equal(t, 204, res.StatusCode, "204")
	require.Equal(t, "", body, "204 body")

	req = newReq(t, "GET", srv.URL+"/file", nil)
	req.Header.Set("If-Modified-Since", time.Unix(1700000000, 0).UTC().Format(http.TimeFormat))
	res, body = get(t, c, req)
	require.Equal(t, 304, res.StatusCode, "304")
	require.Equal(t, "", body, "304 body")

	req = newReq(t, "GET", srv.URL+"/file", nil)
	req.Header.Set("Range", "bytes=5-")
	res, body = get(t, c, req)
	require.Equal(t, 206, res.StatusCode, "206")
	require.Equal(t, "content", body, "range")

	res, body = get(t, c, newReq(t, "GET", srv.URL+"/redirect", nil))
	require.Equal(t, "file content", body, "redirect followed on the same socket")
	require.Equal(t, "/file", res.Request.URL.Path, "final URL")

	require.Equal(t, int32(1), conns.Load(), "one connection for every request")
}

func TestInteropClientExpectContinue(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echoHandler)
	mux.HandleFunc("/deny", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	srv, _ := countingServer(t, mux)
	c, s := roundTripClient(t, srv)
	var got100 atomic.Bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got100Continue: func() { got100.Store(true) }})

	req := newReq(t, "PUT", srv.URL+"/echo", strings.NewReader("continued"))
	req.Header.Set("Expect", "100-continue")
	_, echoed := get(t, c, req.WithContext(ctx))
	require.Equal(t, true, got100.Load(), "net/http sent 100 Continue")
	require.Equal(t, "continued", echoed, "body")

	got100.Store(false)
	sent := &countingReader{r: strings.NewReader(strings.Repeat("q", 1<<20))}
	req = newReq(t, "PUT", srv.URL+"/deny", io.NopCloser(sent))
	req.ContentLength = 1 << 20
	req.Header.Set("Expect", "100-continue")
	res, body := get(t, c, req.WithContext(ctx))
	require.Equal(t, 403, res.StatusCode, "status")
	require.Equal(t, "no\n", body, "denial body")
	require.Equal(t, false, got100.Load(), "no 100")
	require.Equal(t, int64(0), sent.n.Load(), "body withheld")
	// A Content-Length body that was never sent leaves the connection unusable: it is closed.
	require.Equal(t, false, s.IsOpen(), "socket closed")
	_, err := c.Get(srv.URL + "/echo")
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestInteropClientExpectContinueTimeout(t *testing.T) {
	// A peer that never answers 100 Continue still gets the body after ExpectContinueTimeout.
	conn, peer := tcpPair(t)
	rt := &RoundTripper{Socket: symsock.New(conn), ExpectContinueTimeout: 20 * time.Millisecond}
	go func() {
		br := bufio.NewReader(peer)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(req.Body) // arrives without any 100 Continue
		fmt.Fprintf(peer, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
	}()
	req := newReq(t, "POST", "http://peer/x", strings.NewReader("eventually"))
	req.Header.Set("Expect", "100-continue")
	res, err := rt.RoundTrip(req)
	require.NoError(t, err)
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, "eventually", string(b), "echo")
}

func TestInteropClientConnectionClose(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hi") })
	srv, _ := countingServer(t, mux)

	c, s := roundTripClient(t, srv)
	res, body := get(t, c, newReq(t, "GET", srv.URL+"/close", nil))
	require.Equal(t, "bye", body, "body")
	require.Equal(t, true, res.Close, "Close")
	require.Equal(t, false, s.IsOpen(), "socket closed")
	_, err := c.Get(srv.URL + "/")
	require.ErrorIs(t, err, net.ErrClosed)

	c, s = roundTripClient(t, srv)
	req := newReq(t, "GET", srv.URL+"/", nil)
	req.Close = true
	res, body = get(t, c, req)
	require.Equal(t, "hi", body, "body")
	require.Equal(t, true, res.Close, "Close")
	require.Equal(t, false, s.IsOpen(), "socket closed")
}

func TestInteropClientHTTP10(t *testing.T) {
	srv, _ := countingServer(t, http.HandlerFunc(echoHandler))
	c, s := roundTripClient(t, srv)
	s.LockClientToHTTP10()
	res, body := get(t, c, newReq(t, "POST", srv.URL+"/", opaqueReader{strings.NewReader("buffered for 1.0")}))
	require.Equal(t, "buffered for 1.0", body, "body")
	require.Equal(t, "HTTP/1.0", res.Header.Get("X-Got-Proto"), "server saw 1.0")
	require.Equal(t, "16", res.Header.Get("X-Got-Length"), "sent with a length")
	require.Equal(t, false, s.IsOpen(), "1.0 exchange closes")
}

func TestInteropClientPipelinedRaw(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	}))
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	s := symsock.New(conn)
	defer s.Close()
	host := http.Header{"Host": {"x"}}
	require.NoError(t, s.WriteRequest(&symsock.Request{Method: "GET", Target: "/a", Header: host}))
	require.NoError(t, s.WriteRequest(&symsock.Request{Method: "HEAD", Target: "/b", Header: host}))
	require.NoError(t, s.WriteRequest(&symsock.Request{Method: "POST", Target: "/c", Header: host, Body: []byte("body")}))
	for _, want := range []string{"GET /a ", "", "POST /c body"} {
		var res symsock.Response
		require.NoError(t, s.ReadResponse(&res))
		for s.ReadState() != symsock.ReadEmpty {
			require.NoError(t, s.ReadSome(&res))
		}
		require.Equal(t, 200, res.Status, "status")
		require.Equal(t, want, string(res.Body), "body")
	}
	require.Equal(t, int32(1), conns.Load(), "connections")
}

func TestInteropClientConcurrentRoundTrips(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	c, _ := roundTripClient(t, srv)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				path := fmt.Sprintf("/g%d/%d", g, i)
				res, err := c.Get(srv.URL + path)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || string(b) != path {
					errs <- fmt.Errorf("%s: got %q, %v", path, b, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	require.Equal(t, int32(1), conns.Load(), "connections")
}

func TestInteropClientCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 1)
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	c, s := roundTripClient(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	_, err := c.Do(newReq(t, "GET", srv.URL+"/", nil).WithContext(ctx))
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, false, s.IsOpen(), "socket closed")
	_, err = c.Get(srv.URL + "/")
	require.ErrorIs(t, err, net.ErrClosed)
}

func TestInteropClientBodyClose(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 10
		if r.URL.Path == "/huge" {
			n = 4 << 20
		}
		_, _ = io.WriteString(w, strings.Repeat("b", n))
	}))
	c, s := roundTripClient(t, srv)
	res, err := c.Get(srv.URL + "/small")
	require.NoError(t, err)
	require.NoError(t, res.Body.Close()) // unread rest drained: the socket stays usable
	_, body := get(t, c, newReq(t, "GET", srv.URL+"/small", nil))
	require.Equal(t, strings.Repeat("b", 10), body, "after drain")

	res, err = c.Get(srv.URL + "/huge")
	require.NoError(t, err)
	require.NoError(t, res.Body.Close()) // too much left to drain: closed
	require.Equal(t, false, s.IsOpen(), "socket closed")
	_, err = res.Body.Read(make([]byte, 1))
	require.ErrorIs(t, err, http.ErrBodyReadAfterClose)
	require.Equal(t, int32(1), conns.Load(), "connections")
}

func TestInteropClientBodyLength(t *testing.T) {
	srv, _ := countingServer(t, http.HandlerFunc(echoHandler))
	c, _ := roundTripClient(t, srv)
	req := newReq(t, "POST", srv.URL+"/", io.NopCloser(strings.NewReader("short")))
	req.ContentLength = 10
	_, err := c.Do(req)
	require.ErrorIs(t, err, ErrBodyLength)
}

// heapGrowth runs f and returns how many bytes the whole process allocated meanwhile.
func heapGrowth(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct{ n int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	k := min(int64(len(b)), p.n)
	for i := range b[:k] {
		b[i] = byte(i)
	}
	p.n -= k
	return int(k), nil
}

const bigBody = 64 << 20

// bounded is the allocation budget for moving a 64 MiB body: far below its size.
const bounded = 8 << 20

func TestInteropBigBodyBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB transfers")
	}
	want := sha256.New()
	_, _ = io.Copy(want, &patternReader{n: bigBody})
	wantSum := fmt.Sprintf("%x", want.Sum(nil))

	t.Run("Serve upload", func(t *testing.T) {
		sums := make(chan string, 1)
		srv := startSymsockServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := sha256.New()
			_, err := io.Copy(h, r.Body)
			assert.NoError(t, err)
			sums <- fmt.Sprintf("%x", h.Sum(nil))
		}))
		c := netHTTPClient(t)
		grew := heapGrowth(func() {
			res, body := get(t, c, newReq(t, "POST", srv.URL+"/", opaqueReader{&patternReader{n: bigBody}}))
			require.Equal(t, 200, res.StatusCode, "status")
			require.Equal(t, "", body, "body")
		})
		require.Equal(t, wantSum, <-sums, "sha256")
		require.LessOrEqual(t, grew, uint64(bounded), "moving %d bytes allocated %d bytes", bigBody, grew)
	})
	t.Run("RoundTripper download", func(t *testing.T) {
		srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(bigBody))
			_, _ = io.Copy(w, &patternReader{n: bigBody})
		}))
		c, _ := roundTripClient(t, srv)
		var sum string
		grew := heapGrowth(func() {
			res, err := c.Get(srv.URL)
			require.NoError(t, err)
			h := sha256.New()
			_, err = io.Copy(h, res.Body)
			require.NoError(t, err)
			res.Body.Close()
			sum = fmt.Sprintf("%x", h.Sum(nil))
		})
		require.Equal(t, wantSum, sum, "sha256")
		require.LessOrEqual(t, grew, uint64(bounded), "moving %d bytes allocated %d bytes", bigBody, grew)
	})
	t.Run("ReadSome", func(t *testing.T) {
		conn, peer := tcpPair(t)
		_ = conn.SetDeadline(time.Now().Add(4 * testTimeout))
		_ = peer.SetDeadline(time.Now().Add(4 * testTimeout))
		s := symsock.New(conn)
		go func() {
			fmt.Fprintf(peer, "PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", bigBody)
			_, _ = io.Copy(peer, &patternReader{n: bigBody})
		}()
		h := sha256.New()
		var req symsock.Request
		grew := heapGrowth(func() {
			require.NoError(t, s.ReadRequest(&req))
			for {
				h.Write(req.Body)
				req.Body = req.Body[:0]
				if s.ReadState() == symsock.ReadFinished {
					break
				}
				require.NoError(t, s.ReadSome(&req))
			}
		})
		require.Equal(t, wantSum, fmt.Sprintf("%x", h.Sum(nil)), "sha256")
		require.LessOrEqual(t, grew, uint64(bounded), "moving %d bytes allocated %d bytes", bigBody, grew)
	})
}

// TestInteropServerCurl has curl, a client that is not Go's, talk to Serve.
func TestInteropServerCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	upload := bytes.Repeat([]byte("upload-"), 300<<10) // ~2 MiB
	dir := t.TempDir()
	file := filepath.Join(dir, "up.bin")
	require.NoError(t, os.WriteFile(file, upload, 0o644))
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", echoHandler)
	mux.HandleFunc("/sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x %s %s", n, h.Sum(nil), strings.Join(r.TransferEncoding, ","), r.Proto)
	})
	mux.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(dir))))
	srv := startSymsockServer(t, mux)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--fail"}, args...)...).CombinedOutput()
		require.NoError(t, err, "curl %v\n%s", args, out)
		return string(out)
	}
	sum := sha256.Sum256(upload)
	want := fmt.Sprintf("%d %x", len(upload), sum)

	require.Equal(t, "", run(srv.URL+"/echo"), "GET")
	// Two URLs on one command line: curl reuses the connection.
	require.Equal(t, "1 0 ", run("-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ", srv.URL+"/echo", srv.URL+"/echo"), "keep-alive")
	// --expect100-timeout longer than the test: curl only sends the body because the 100 Continue came.
	require.Equal(t, want+"  HTTP/1.1", run("-H", "Expect: 100-continue", "--expect100-timeout", "60", "-T", file, srv.URL+"/sum"), "100-continue upload")
	require.Equal(t, want+" chunked HTTP/1.1", run("-H", "Transfer-Encoding: chunked", "--data-binary", "@"+file, srv.URL+"/sum"), "chunked upload")
	require.Equal(t, want+"  HTTP/1.0", run("--http1.0", "--data-binary", "@"+file, srv.URL+"/sum"), "HTTP/1.0 upload")
	require.Equal(t, "upload-", run("-r", "7-13", srv.URL+"/files/up.bin"), "range")
	head := run("-I", srv.URL+"/files/up.bin")
	require.Contains(t, head, fmt.Sprintf("Content-Length: %d\r\n", len(upload)), "HEAD")
	require.True(t, strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n"), "HEAD: %q", head)
	head = run("--http1.0", "-D", "-", "-o", "/dev/null", srv.URL+"/files/up.bin")
	require.True(t, strings.HasPrefix(head, "HTTP/1.0 200 OK\r\n"), "HTTP/1.0 head: %q", head)
}
