package symsock

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Request-rate benchmarks: keep-alive GETs over loopback TCP answered by net/http's server (the baseline), by
// Serve with the same handler (the path net/http users take), and by a raw ReadRequest/WriteResponse loop. One
// load generator drives all three: pre-built request bytes on raw keep-alive connections, responses read by
// Content-Length into a fixed buffer, no allocation, so that the client neither dominates nor pollutes the count
// of server allocations. Run with
//
//	go test -run '^$' -bench KeepAliveGET -benchtime 2s ./symsock/
//
// and compare req/s and allocs/req between servers at the same connection count.

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

// runLoad drives b.N requests spread over conns connections to addr and reports requests per second and the
// process's allocations (and bytes) per request, which are the server's since the generator allocates nothing.
func runLoad(b *testing.B, addr string, conns int) {
	lc := make([]*loadConn, conns)
	for i := range lc {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		lc[i] = &loadConn{c: c, buf: make([]byte, 4096)}
		if err := lc[i].roundTrip(); err != nil { // warm the connection (and the server's per-connection state)
			b.Fatal(err)
		}
	}
	errs := make([]error, conns)
	var wg sync.WaitGroup
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	start := time.Now()
	for i := range lc {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if err := lc[i].roundTrip(); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&after)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/req")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N), "B/req")
}

// benchServer starts one kind of server on a loopback listener and returns its address.
func benchServer(b *testing.B, kind string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	if kind == "net/http" {
		srv := &http.Server{Handler: http.HandlerFunc(benchHandler)}
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.Serve(ln) }()
		b.Cleanup(func() { _ = srv.Close() })
		return ln.Addr().String()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := New(c)
				if kind == "symsock-raw" {
					_ = rawHelloLoop(s)
				} else {
					_ = Serve(s, http.HandlerFunc(benchHandler))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// rawHelloLoop answers like benchHandler with the socket's own API, reusing its messages.
func rawHelloLoop(s *Socket) error {
	defer s.Close()
	var req Request
	res := Response{Status: 200, Header: http.Header{
		"Content-Type": {"text/plain; charset=utf-8"},
		"Date":         {""},
	}, Body: benchBody}
	for {
		if err := s.ReadRequest(&req); err != nil {
			return err
		}
		for s.ReadState() != ReadFinished {
			if err := s.ReadSome(&req); err != nil {
				return err
			}
		}
		res.Header["Date"][0] = httpDate()
		if err := s.WriteResponse(&res); err != nil || !s.IsOpen() {
			return err
		}
	}
}

// BenchmarkKeepAliveGET compares servers at each connection count in one run; see the comment at the top.
func BenchmarkKeepAliveGET(b *testing.B) {
	for _, conns := range []int{1, 16} {
		for _, kind := range []string{"net/http", "symsock-Serve", "symsock-raw"} {
			b.Run("conns="+strconv.Itoa(conns)+"/server="+kind, func(b *testing.B) {
				runLoad(b, benchServer(b, kind), conns)
			})
		}
	}
}
