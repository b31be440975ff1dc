package symhttp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/symsock"
	"github.com/stretchr/testify/require"
)

// Request-rate benchmarks: keep-alive GETs over loopback TCP answered by net/http's server (the baseline), by
// Serve with the same handler (the path net/http users take), and by a raw ReadRequest/WriteResponse loop. One
// load generator drives all three: pre-built request bytes on raw keep-alive connections, responses read by
// Content-Length into a fixed buffer, no allocation, so that the client neither dominates nor pollutes the count
// of server allocations. Run with
//
//	go test -run '^$' -bench KeepAliveGET -benchtime 100000x ./symsock/symhttp/
//
// and compare req/s and allocs/req between servers at the same connection count; the Interleaved variant does it
// in alternating rounds and reports the ratios.

var benchBody = []byte("Hello, World!")

func benchHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(benchBody)
}

var loadRequest = []byte("GET /hello HTTP/1.1\r\nHost: bench\r\nUser-Agent: loadgen\r\n\r\n")

// loadConn is one keep-alive connection of the load generator.
type loadConn struct {
	c   net.Conn
	buf []byte
	n   int // bytes buffered
}

var errLoadResponse = errors.New("loadgen: unexpected response")

// roundTrip sends loadRequest and reads one 200 response framed by Content-Length, without allocating.
func (l *loadConn) roundTrip() error {
	if _, err := l.c.Write(loadRequest); err != nil {
		return err
	}
	for {
		if i := bytes.Index(l.buf[:l.n], crlfcrlf); i >= 0 {
			head := l.buf[:i+4]
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
				return errLoadResponse
			}
			cl := contentLengthOf(head)
			if cl < 0 {
				return errLoadResponse
			}
			total := i + 4 + cl
			for l.n < total {
				m, err := l.c.Read(l.buf[l.n:])
				if err != nil {
					return err
				}
				l.n += m
			}
			l.n = copy(l.buf, l.buf[total:l.n])
			return nil
		}
		if l.n == len(l.buf) {
			return errLoadResponse
		}
		m, err := l.c.Read(l.buf[l.n:])
		if err != nil {
			return err
		}
		l.n += m
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// contentLengthOf finds the Content-Length value in a response head (name matched case-insensitively), or -1.
func contentLengthOf(head []byte) int {
	const name = "\r\ncontent-length:"
	for i := 0; i+len(name) <= len(head); i++ {
		j := 0
		for ; j < len(name); j++ {
			c := head[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != name[j] {
				break
			}
		}
		if j < len(name) {
			continue
		}
		k := i + len(name)
		for k < len(head) && head[k] == ' ' {
			k++
		}
		n, digits := 0, 0
		for ; k < len(head) && head[k] >= '0' && head[k] <= '9'; k++ {
			n = n*10 + int(head[k]-'0')
			digits++
		}
		if digits == 0 {
			return -1
		}
		return n
	}
	return -1
}

// loadGen is the load generator's set of keep-alive connections to one server.
type loadGen []*loadConn

func dialLoad(b *testing.B, addr string, conns int) loadGen {
	lg := make(loadGen, conns)
	for i := range lg {
		c, err := net.Dial("tcp", addr)
		require.NoError(b, err)
		b.Cleanup(func() { c.Close() })
		lg[i] = &loadConn{c: c, buf: make([]byte, 4096)}
		require.NoError(b, lg[i].roundTrip()) // warm the connection (and the server's per-connection state)
	}
	return lg
}

// loadResult is what one run of the generator measured: the process's allocations are the server's, since the
// generator allocates nothing.
type loadResult struct {
	requests int
	elapsed  time.Duration
	mallocs  uint64
	bytes    uint64
}

func (r *loadResult) add(o loadResult) {
	r.requests += o.requests
	r.elapsed += o.elapsed
	r.mallocs += o.mallocs
	r.bytes += o.bytes
}

func (r loadResult) reqPerSec() float64    { return float64(r.requests) / r.elapsed.Seconds() }
func (r loadResult) allocsPerReq() float64 { return float64(r.mallocs) / float64(r.requests) }
func (r loadResult) bytesPerReq() float64  { return float64(r.bytes) / float64(r.requests) }

// run sends n requests spread over the connections, each connection one request at a time.
func (lg loadGen) run(b *testing.B, n int) loadResult {
	errs := make([]error, len(lg))
	var wg sync.WaitGroup
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := range lg {
		k := n / len(lg)
		if i < n%len(lg) {
			k++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range k {
				if err := lg[i].roundTrip(); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return loadResult{requests: n, elapsed: elapsed, mallocs: after.Mallocs - before.Mallocs, bytes: after.TotalAlloc - before.TotalAlloc}
}

// benchServer starts one kind of server on a loopback listener and returns its address.
func benchServer(b *testing.B, kind string) string {
	switch kind {
	case "net/http":
		// A plain http.Server (not httptest's, whose connection tracking would slow the baseline down).
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(b, err)
		srv := &http.Server{Handler: http.HandlerFunc(benchHandler)}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ln) }()
		b.Cleanup(func() { _ = srv.Close(); <-done })
		return ln.Addr().String()
	case "symsock-raw":
		return strings.TrimPrefix(startSymsockServerFunc(b, rawHelloLoop).URL, "http://")
	}
	return strings.TrimPrefix(startSymsockServerFunc(b, func(s *symsock.Socket) error {
		return Serve(s, http.HandlerFunc(benchHandler))
	}).URL, "http://")
}

// rawServe answers every request on s, read whole, with the response respond fills in: the socket's own API.
func rawServe(s *symsock.Socket, respond func(req *symsock.Request, res *symsock.Response)) error {
	defer s.Close()
	var req symsock.Request
	var res symsock.Response
	for {
		if err := s.ReadRequest(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		for s.ReadState() != symsock.ReadFinished {
			if err := s.ReadSome(&req); err != nil {
				return err
			}
		}
		respond(&req, &res)
		if err := s.WriteResponse(&res); err != nil || !s.IsOpen() {
			return err
		}
	}
}

// rawHelloLoop answers like benchHandler, reusing its response.
func rawHelloLoop(s *symsock.Socket) error {
	header := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Date": {""}}
	return rawServe(s, func(_ *symsock.Request, res *symsock.Response) {
		header["Date"][0] = httpDate()
		*res = symsock.Response{Status: 200, Header: header, Body: benchBody}
	})
}

var benchServers = []string{"net/http", "symsock-Serve", "symsock-raw"}

// BenchmarkKeepAliveGET measures each server at each connection count; see the comment at the top.
func BenchmarkKeepAliveGET(b *testing.B) {
	for _, conns := range []int{1, 16} {
		for _, kind := range benchServers {
			b.Run("conns="+strconv.Itoa(conns)+"/server="+kind, func(b *testing.B) {
				lg := dialLoad(b, benchServer(b, kind), conns)
				b.ResetTimer()
				r := lg.run(b, b.N)
				b.StopTimer()
				b.ReportMetric(r.reqPerSec(), "req/s")
				b.ReportMetric(r.allocsPerReq(), "allocs/req")
				b.ReportMetric(r.bytesPerReq(), "B/req")
			})
		}
	}
}

// BenchmarkKeepAliveGETInterleaved runs the three servers in alternating rounds of b.N/50 requests each, so that
// the load of a shared machine hits them alike, and reports each one's req/s and allocs/req and the ratios of the
// symsock servers to net/http (x-net/http: above 1 is faster).
func BenchmarkKeepAliveGETInterleaved(b *testing.B) {
	for _, conns := range []int{1, 16} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			gens := make([]loadGen, len(benchServers))
			for i, kind := range benchServers {
				gens[i] = dialLoad(b, benchServer(b, kind), conns)
			}
			totals := make([]loadResult, len(benchServers))
			const rounds = 50
			b.ResetTimer()
			for round := range rounds {
				n := b.N / rounds
				if round < b.N%rounds {
					n++
				}
				if n == 0 {
					continue
				}
				for i := range benchServers {
					totals[(i+round)%len(benchServers)].add(gens[(i+round)%len(benchServers)].run(b, n))
				}
			}
			b.StopTimer()
			base := totals[0]
			for i, kind := range benchServers {
				b.ReportMetric(totals[i].reqPerSec(), kind+"-req/s")
				b.ReportMetric(totals[i].allocsPerReq(), kind+"-allocs/req")
				if i > 0 {
					b.ReportMetric(totals[i].reqPerSec()/base.reqPerSec(), kind+"-x-net/http")
				}
			}
		})
	}
}

// replayConn delivers loadRequest n times (as one pipelined stream) then EOF, and discards what is written: the
// servers' CPU cost per request without any I/O.
type replayConn struct {
	net.Conn
	left   int // requests still to deliver
	off    int // offset in the current one
	closed chan struct{}
	once   sync.Once
}

func newReplayConn(n int) *replayConn { return &replayConn{left: n, closed: make(chan struct{})} }

func (c *replayConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && c.left > 0 {
		k := copy(p[n:], loadRequest[c.off:])
		n += k
		c.off += k
		if c.off == len(loadRequest) {
			c.off = 0
			c.left--
		}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (c *replayConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *replayConn) Close() error                       { c.once.Do(func() { close(c.closed) }); return nil }
func (c *replayConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *replayConn) SetDeadline(t time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(t time.Time) error { return nil }

// oneConnListener hands out one connection, then blocks until closed.
type oneConnListener struct {
	c    chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *oneConnListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }

// BenchmarkServeCPU is the servers' CPU cost and allocations per keep-alive GET, from a pipelined in-memory
// stream: what the adapter (and the socket) add, with the kernel out of the picture.
func BenchmarkServeCPU(b *testing.B) {
	b.Run("server=net/http", func(b *testing.B) {
		b.ReportAllocs()
		conn := newReplayConn(b.N)
		ln := &oneConnListener{c: make(chan net.Conn, 1), done: make(chan struct{})}
		ln.c <- conn
		srv := &http.Server{Handler: http.HandlerFunc(benchHandler)}
		go func() { _ = srv.Serve(ln) }()
		<-conn.closed
		b.StopTimer()
		_ = srv.Close()
	})
	b.Run("server=symsock-Serve", func(b *testing.B) {
		b.ReportAllocs()
		require.NoError(b, Serve(symsock.New(newReplayConn(b.N)), http.HandlerFunc(benchHandler)))
	})
	b.Run("server=symsock-raw", func(b *testing.B) {
		b.ReportAllocs()
		require.NoError(b, rawHelloLoop(symsock.New(newReplayConn(b.N))))
	})
}

// BenchmarkRoundTripGET is the client side: keep-alive GETs by an http.Client over NewRoundTripper on one socket,
// and over an http.Transport limited to one connection (the baseline), against the same raw symsock server. The
// allocations counted are the whole process's: the client's plus the server's 2 per request.
func BenchmarkRoundTripGET(b *testing.B) {
	addr := strings.TrimPrefix(startSymsockServerFunc(b, rawHelloLoop).URL, "http://")
	url := "http://" + addr + "/hello"
	run := func(b *testing.B, c *http.Client) {
		get := func() {
			res, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if err != nil || n != int64(len(benchBody)) {
				b.Fatal(n, err)
			}
		}
		get() // connect
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			get()
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	}
	b.Run("client=net/http", func(b *testing.B) {
		tr := &http.Transport{MaxConnsPerHost: 1, DisableCompression: true}
		defer tr.CloseIdleConnections()
		run(b, &http.Client{Transport: tr})
	})
	b.Run("client=symsock", func(b *testing.B) {
		conn, err := net.Dial("tcp", addr)
		require.NoError(b, err)
		s := symsock.New(conn)
		defer s.Close()
		run(b, &http.Client{Transport: NewRoundTripper(s)})
	})
}
