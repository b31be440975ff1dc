package symsock

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
	return startSymsockServerFunc(t, func(s *Socket) error { return Serve(s, h) })
}

func startSymsockServerFunc(tb testing.TB, serve func(*Socket) error) *symsockServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustNil(tb, err)
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
				if err := serve(New(c)); err != nil && !errors.Is(err, net.ErrClosed) {
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
	mustNil(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	mustNil(t, err)
	return res, string(b)
}

func newReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	mustNil(t, err)
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
	eq(t, "CL echo", body, "content-length body")
	eq(t, "server saw length", res.Header.Get("X-Got-Length"), "19")
	eq(t, "response length", res.ContentLength, int64(19))

	res, body = do(newReq(t, "POST", srv.URL+"/echo", opaqueReader{strings.NewReader("chunked body")}))
	eq(t, "chunked echo", body, "chunked body")
	eq(t, "server saw chunked", res.Header.Get("X-Got-TE"), "chunked")
	eq(t, "server saw length", res.Header.Get("X-Got-Length"), "-1")

	res, body = do(newReq(t, "GET", srv.URL+"/big", nil))
	eq(t, "big body", body == big, true)
	eq(t, "big is chunked", strings.Join(res.TransferEncoding, ","), "chunked")

	req := newReq(t, "POST", srv.URL+"/echo", opaqueReader{strings.NewReader("with trailers")})
	req.Trailer = http.Header{"X-Req-Trailer": nil}
	req.Body = io.NopCloser(&trailerSetter{r: strings.NewReader("with trailers"), set: func() { req.Trailer.Set("X-Req-Trailer", "t1") }})
	res, body = do(req)
	eq(t, "trailer echo body", body, "with trailers")
	eq(t, "response trailer from request trailer", res.Trailer.Get("X-Echo-Trailer"), "t1")

	eq(t, "connections", srv.accepted.Load(), int32(1))
	eq(t, "reuse", fmt.Sprint(reused), "[false true true true]")
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
	eq(t, "got 100 Continue", got100.Load(), true)
	eq(t, "body", body, "after continue")
	eq(t, "status", res.StatusCode, 200)

	got100.Store(false)
	sent := &countingReader{r: strings.NewReader(strings.Repeat("z", 1<<20))}
	req = newReq(t, "PUT", srv.URL+"/deny", io.NopCloser(sent))
	req.ContentLength = 1 << 20
	req.Header.Set("Expect", "100-continue")
	res, _ = get(t, c, req.WithContext(ctx))
	eq(t, "status", res.StatusCode, 401)
	eq(t, "no 100 for a denied request", got100.Load(), false)
	eq(t, "body bytes sent", sent.n.Load(), int64(0))
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
	mustNil(t, os.WriteFile(filepath.Join(dir, "data.bin"), content, 0o644))
	mustNil(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>index</p>"), 0o644))
	srv := startSymsockServer(t, http.FileServer(http.Dir(dir)))
	c := netHTTPClient(t)

	res, body := get(t, c, newReq(t, "GET", srv.URL+"/data.bin", nil))
	eq(t, "whole file", body == string(content), true)
	eq(t, "Content-Length", res.ContentLength, int64(len(content)))
	eq(t, "Accept-Ranges", res.Header.Get("Accept-Ranges"), "bytes")

	req := newReq(t, "GET", srv.URL+"/data.bin", nil)
	req.Header.Set("Range", "bytes=1000-1999")
	res, body = get(t, c, req)
	eq(t, "range status", res.StatusCode, http.StatusPartialContent)
	eq(t, "Content-Range", res.Header.Get("Content-Range"), fmt.Sprintf("bytes 1000-1999/%d", len(content)))
	eq(t, "range body", body == string(content[1000:2000]), true)

	req = newReq(t, "GET", srv.URL+"/data.bin", nil)
	req.Header.Set("Range", "bytes=0-9,-10")
	res, body = get(t, c, req)
	eq(t, "multi-range status", res.StatusCode, http.StatusPartialContent)
	mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	mustNil(t, err)
	eq(t, "multipart", mt, "multipart/byteranges")
	mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
	for _, want := range [][]byte{content[:10], content[len(content)-10:]} {
		p, err := mr.NextPart()
		mustNil(t, err)
		got, err := io.ReadAll(p)
		mustNil(t, err)
		eq(t, "part", bytes.Equal(got, want), true)
	}

	res, body = get(t, c, newReq(t, "HEAD", srv.URL+"/data.bin", nil))
	eq(t, "HEAD length", res.ContentLength, int64(len(content)))
	eq(t, "HEAD body", body, "")

	req = newReq(t, "GET", srv.URL+"/data.bin", nil)
	req.Header.Set("If-Modified-Since", res.Header.Get("Last-Modified"))
	res, body = get(t, c, req)
	eq(t, "304", res.StatusCode, http.StatusNotModified)
	eq(t, "304 body", body, "")

	res, body = get(t, c, newReq(t, "GET", srv.URL+"/", nil))
	eq(t, "index", body, "<p>index</p>")
	eq(t, "index type", res.Header.Get("Content-Type"), "text/html; charset=utf-8")
	eq(t, "one connection", srv.accepted.Load(), int32(1))
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
	eq(t, "204", res.StatusCode, 204)
	eq(t, "204 body", body, "")
	_, body = get(t, c, newReq(t, "GET", srv.URL+"/", nil))
	eq(t, "after 204", body, "root")
	eq(t, "connections", srv.accepted.Load(), int32(1))

	res, _ = get(t, c, newReq(t, "GET", srv.URL+"/close", nil))
	eq(t, "server close", res.Close, true)
	get(t, c, newReq(t, "GET", srv.URL+"/", nil))
	eq(t, "new connection after server close", srv.accepted.Load(), int32(2))

	req := newReq(t, "GET", srv.URL+"/", nil)
	req.Close = true
	res, _ = get(t, c, req)
	eq(t, "client close", res.Close, true)
	get(t, c, newReq(t, "GET", srv.URL+"/", nil))
	eq(t, "new connection after client close", srv.accepted.Load(), int32(3))
}

func TestInteropServerFlushStreaming(t *testing.T) {
	step := make(chan struct{})
	srv := startSymsockServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_, _ = io.WriteString(w, "tick 1\n")
		mustNil(t, rc.Flush())
		<-step
		_, _ = io.WriteString(w, "tick 2\n")
	}))
	res, err := netHTTPClient(t).Get(srv.URL)
	mustNil(t, err)
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	mustNil(t, err)
	eq(t, "first line before the handler finished", line, "tick 1\n")
	close(step)
	rest, err := io.ReadAll(br)
	mustNil(t, err)
	eq(t, "rest", string(rest), "tick 2\n")
}

// TestInteropRawServerNetHTTPClient answers net/http's client with the socket's own API.
func TestInteropRawServerNetHTTPClient(t *testing.T) {
	srv := startSymsockServerFunc(t, func(s *Socket) error {
		return rawServe(s, func(req *Request, res *Response) {
			*res = Response{Status: 200, Header: http.Header{"X-Method": {req.Method}}, Body: append([]byte(req.Target+" "), req.Body...)}
		})
	})
	c := netHTTPClient(t)
	for i := range 3 {
		res, body := get(t, c, newReq(t, "POST", fmt.Sprintf("%s/r%d", srv.URL, i), strings.NewReader("payload")))
		eq(t, "body", body, fmt.Sprintf("/r%d payload", i))
		eq(t, "method", res.Header.Get("X-Method"), "POST")
	}
	eq(t, "connections", srv.accepted.Load(), int32(1))
}

// roundTripClient dials srv and returns an http.Client whose transport is a RoundTripper over that connection.
func roundTripClient(t *testing.T, srv *httptest.Server) (*http.Client, *Socket) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	mustNil(t, err)
	s := New(conn)
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
	eq(t, "CL echo", body, "small")
	eq(t, "server saw CL", res.Header.Get("X-Got-Length"), "5")

	big := strings.Repeat("L", 300<<10) // over the one-write limit: streamed with its Content-Length
	res, body = get(t, c, newReq(t, "POST", srv.URL+"/echo", strings.NewReader(big)))
	eq(t, "big CL echo", body == big, true)
	eq(t, "server saw big CL", res.Header.Get("X-Got-Length"), fmt.Sprint(len(big)))

	res, body = get(t, c, newReq(t, "POST", srv.URL+"/echo", opaqueReader{strings.NewReader("unknown length")}))
	eq(t, "chunked echo", body, "unknown length")
	eq(t, "server saw chunked", res.Header.Get("X-Got-TE"), "chunked")

	req := newReq(t, "POST", srv.URL+"/echo", nil)
	req.Trailer = http.Header{"X-Req-Trailer": nil}
	req.Body = io.NopCloser(&trailerSetter{r: strings.NewReader("trailing"), set: func() { req.Trailer.Set("X-Req-Trailer", "rt") }})
	req.ContentLength = -1
	res, body = get(t, c, req)
	eq(t, "trailer body", body, "trailing")
	eq(t, "request trailer reached the server", res.Trailer.Get("X-Echo-Trailer"), "rt")

	res, body = get(t, c, newReq(t, "GET", srv.URL+"/stream", nil))
	eq(t, "stream", body, "part 0\npart 1\npart 2\n")
	eq(t, "chunked", strings.Join(res.TransferEncoding, ","), "chunked")
	eq(t, "response trailer", res.Trailer.Get("X-Done"), "yes")

	res, body = get(t, c, newReq(t, "HEAD", srv.URL+"/file", nil))
	eq(t, "HEAD length", res.ContentLength, int64(len("file content")))
	eq(t, "HEAD body", body, "")

	res, body = get(t, c, newReq(t, "GET", srv.URL+"/204", nil))
	eq(t, "204", res.StatusCode, 204)
	eq(t, "204 body", body, "")

	req = newReq(t, "GET", srv.URL+"/file", nil)
	req.Header.Set("If-Modified-Since", time.Unix(1700000000, 0).UTC().Format(http.TimeFormat))
	res, body = get(t, c, req)
	eq(t, "304", res.StatusCode, 304)
	eq(t, "304 body", body, "")

	req = newReq(t, "GET", srv.URL+"/file", nil)
	req.Header.Set("Range", "bytes=5-")
	res, body = get(t, c, req)
	eq(t, "206", res.StatusCode, 206)
	eq(t, "range", body, "content")

	res, body = get(t, c, newReq(t, "GET", srv.URL+"/redirect", nil))
	eq(t, "redirect followed on the same socket", body, "file content")
	eq(t, "final URL", res.Request.URL.Path, "/file")

	eq(t, "one connection for every request", conns.Load(), int32(1))
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
	eq(t, "net/http sent 100 Continue", got100.Load(), true)
	eq(t, "body", echoed, "continued")

	got100.Store(false)
	sent := &countingReader{r: strings.NewReader(strings.Repeat("q", 1<<20))}
	req = newReq(t, "PUT", srv.URL+"/deny", io.NopCloser(sent))
	req.ContentLength = 1 << 20
	req.Header.Set("Expect", "100-continue")
	res, body := get(t, c, req.WithContext(ctx))
	eq(t, "status", res.StatusCode, 403)
	eq(t, "denial body", body, "no\n")
	eq(t, "no 100", got100.Load(), false)
	eq(t, "body withheld", sent.n.Load(), int64(0))
	// A Content-Length body that was never sent leaves the connection unusable: it is closed.
	eq(t, "socket closed", s.IsOpen(), false)
	_, err := c.Get(srv.URL + "/echo")
	mustIs(t, err, net.ErrClosed)
}

func TestInteropClientExpectContinueTimeout(t *testing.T) {
	// A peer that never answers 100 Continue still gets the body after ExpectContinueTimeout.
	conn, peer := tcpPair(t)
	rt := &RoundTripper{Socket: New(conn), ExpectContinueTimeout: 20 * time.Millisecond}
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
	mustNil(t, err)
	b, err := io.ReadAll(res.Body)
	mustNil(t, err)
	eq(t, "echo", string(b), "eventually")
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
	eq(t, "body", body, "bye")
	eq(t, "Close", res.Close, true)
	eq(t, "socket closed", s.IsOpen(), false)
	_, err := c.Get(srv.URL + "/")
	mustIs(t, err, net.ErrClosed)

	c, s = roundTripClient(t, srv)
	req := newReq(t, "GET", srv.URL+"/", nil)
	req.Close = true
	res, body = get(t, c, req)
	eq(t, "body", body, "hi")
	eq(t, "Close", res.Close, true)
	eq(t, "socket closed", s.IsOpen(), false)
}

func TestInteropClientHTTP10(t *testing.T) {
	srv, _ := countingServer(t, http.HandlerFunc(echoHandler))
	c, s := roundTripClient(t, srv)
	s.LockClientToHTTP10()
	res, body := get(t, c, newReq(t, "POST", srv.URL+"/", opaqueReader{strings.NewReader("buffered for 1.0")}))
	eq(t, "body", body, "buffered for 1.0")
	eq(t, "server saw 1.0", res.Header.Get("X-Got-Proto"), "HTTP/1.0")
	eq(t, "sent with a length", res.Header.Get("X-Got-Length"), "16")
	eq(t, "1.0 exchange closes", s.IsOpen(), false)
}

func TestInteropClientPipelinedRaw(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	}))
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	mustNil(t, err)
	s := New(conn)
	defer s.Close()
	host := http.Header{"Host": {"x"}}
	mustNil(t, s.WriteRequest(&Request{Method: "GET", Target: "/a", Header: host}))
	mustNil(t, s.WriteRequest(&Request{Method: "HEAD", Target: "/b", Header: host}))
	mustNil(t, s.WriteRequest(&Request{Method: "POST", Target: "/c", Header: host, Body: []byte("body")}))
	for _, want := range []string{"GET /a ", "", "POST /c body"} {
		var res Response
		mustNil(t, s.ReadResponse(&res))
		for s.ReadState() != ReadEmpty {
			mustNil(t, s.ReadSome(&res))
		}
		eq(t, "status", res.Status, 200)
		eq(t, "body", string(res.Body), want)
	}
	eq(t, "connections", conns.Load(), int32(1))
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
		t.Error(err)
	}
	eq(t, "connections", conns.Load(), int32(1))
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
	mustIs(t, err, context.Canceled)
	eq(t, "socket closed", s.IsOpen(), false)
	_, err = c.Get(srv.URL + "/")
	mustIs(t, err, net.ErrClosed)
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
	mustNil(t, err)
	mustNil(t, res.Body.Close()) // unread rest drained: the socket stays usable
	_, body := get(t, c, newReq(t, "GET", srv.URL+"/small", nil))
	eq(t, "after drain", body, strings.Repeat("b", 10))

	res, err = c.Get(srv.URL + "/huge")
	mustNil(t, err)
	mustNil(t, res.Body.Close()) // too much left to drain: closed
	eq(t, "socket closed", s.IsOpen(), false)
	_, err = res.Body.Read(make([]byte, 1))
	mustIs(t, err, http.ErrBodyReadAfterClose)
	eq(t, "connections", conns.Load(), int32(1))
}

func TestInteropClientBodyLength(t *testing.T) {
	srv, _ := countingServer(t, http.HandlerFunc(echoHandler))
	c, _ := roundTripClient(t, srv)
	req := newReq(t, "POST", srv.URL+"/", io.NopCloser(strings.NewReader("short")))
	req.ContentLength = 10
	_, err := c.Do(req)
	mustIs(t, err, ErrBodyLength)
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
			mustNil(t, err)
			sums <- fmt.Sprintf("%x", h.Sum(nil))
		}))
		c := netHTTPClient(t)
		grew := heapGrowth(func() {
			res, body := get(t, c, newReq(t, "POST", srv.URL+"/", opaqueReader{&patternReader{n: bigBody}}))
			eq(t, "status", res.StatusCode, 200)
			eq(t, "body", body, "")
		})
		eq(t, "sha256", <-sums, wantSum)
		if grew > bounded {
			t.Fatalf("moving %d bytes allocated %d bytes", bigBody, grew)
		}
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
			mustNil(t, err)
			h := sha256.New()
			_, err = io.Copy(h, res.Body)
			mustNil(t, err)
			res.Body.Close()
			sum = fmt.Sprintf("%x", h.Sum(nil))
		})
		eq(t, "sha256", sum, wantSum)
		if grew > bounded {
			t.Fatalf("moving %d bytes allocated %d bytes", bigBody, grew)
		}
	})
	t.Run("ReadSome", func(t *testing.T) {
		conn, peer := tcpPair(t)
		_ = conn.SetDeadline(time.Now().Add(4 * testTimeout))
		_ = peer.SetDeadline(time.Now().Add(4 * testTimeout))
		s := New(conn)
		go func() {
			fmt.Fprintf(peer, "PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", bigBody)
			_, _ = io.Copy(peer, &patternReader{n: bigBody})
		}()
		h := sha256.New()
		var req Request
		grew := heapGrowth(func() {
			mustNil(t, s.ReadRequest(&req))
			for {
				h.Write(req.Body)
				req.Body = req.Body[:0]
				if s.ReadState() == ReadFinished {
					break
				}
				mustNil(t, s.ReadSome(&req))
			}
		})
		eq(t, "sha256", fmt.Sprintf("%x", h.Sum(nil)), wantSum)
		if grew > bounded {
			t.Fatalf("moving %d bytes allocated %d bytes", bigBody, grew)
		}
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
	mustNil(t, os.WriteFile(file, upload, 0o644))
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
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	sum := sha256.Sum256(upload)
	want := fmt.Sprintf("%d %x", len(upload), sum)

	eq(t, "GET", run(srv.URL+"/echo"), "")
	// Two URLs on one command line: curl reuses the connection.
	eq(t, "keep-alive", run("-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} ", srv.URL+"/echo", srv.URL+"/echo"), "1 0 ")
	// --expect100-timeout longer than the test: curl only sends the body because the 100 Continue came.
	eq(t, "100-continue upload", run("-H", "Expect: 100-continue", "--expect100-timeout", "60", "-T", file, srv.URL+"/sum"), want+"  HTTP/1.1")
	eq(t, "chunked upload", run("-H", "Transfer-Encoding: chunked", "--data-binary", "@"+file, srv.URL+"/sum"), want+" chunked HTTP/1.1")
	eq(t, "HTTP/1.0 upload", run("--http1.0", "--data-binary", "@"+file, srv.URL+"/sum"), want+"  HTTP/1.0")
	eq(t, "range", run("-r", "7-13", srv.URL+"/files/up.bin"), "upload-")
	head := run("-I", srv.URL+"/files/up.bin")
	if !strings.Contains(head, fmt.Sprintf("Content-Length: %d\r\n", len(upload))) || !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") {
		t.Fatalf("HEAD: %q", head)
	}
	head = run("--http1.0", "-D", "-", "-o", "/dev/null", srv.URL+"/files/up.bin")
	if !strings.HasPrefix(head, "HTTP/1.0 200 OK\r\n") {
		t.Fatalf("HTTP/1.0 head: %q", head)
	}
}
