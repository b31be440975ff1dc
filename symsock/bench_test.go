package symsock

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchBodyBytes is the body size of the throughput benchmarks: 1 GiB, or SYMSOCK_BENCH_BYTES for a quick run.
func benchBodyBytes(b *testing.B) int64 {
	if v := os.Getenv("SYMSOCK_BENCH_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(b, err, "SYMSOCK_BENCH_BYTES=%q", v)
		require.Positive(b, n, "SYMSOCK_BENCH_BYTES=%q", v)
		return n
	}
	return 1 << 30
}

const benchPiece = 256 << 10 // the sender's write size and the receiver's buffer, for every contender

// writerOnly hides io.Discard's ReadFrom so io.CopyBuffer uses the given buffer, like the other contenders.
type writerOnly struct{ io.Writer }

// throughputRig holds the connections of the throughput benchmarks: one raw TCP pair and one symsock pair per
// framing, set up once.
type throughputRig struct {
	size     int64
	piece    []byte // what the senders write, benchPiece at a time
	buf      []byte // the raw receiver's and BodyReader's buffer
	rawC     net.Conn
	rawPeer  net.Conn
	servers  map[string]*Socket
	clients  map[string]*Socket
	req      *Request // the server's request, its Body reused with benchPiece capacity
	response *Response
}

var throughputModes = []string{"content-length", "chunked", "chunked-bodyreader"}

func newThroughputRig(b *testing.B) *throughputRig {
	rig := &throughputRig{size: benchBodyBytes(b), piece: make([]byte, benchPiece), buf: make([]byte, benchPiece),
		servers: map[string]*Socket{}, clients: map[string]*Socket{},
		req: &Request{Body: make([]byte, 0, benchPiece)}, response: &Response{Status: 200}}
	for i := range rig.piece {
		rig.piece[i] = byte('a' + i%26)
	}
	untimed := func(c, peer net.Conn) (net.Conn, net.Conn) {
		_ = c.SetDeadline(time.Time{})
		_ = peer.SetDeadline(time.Time{})
		return c, peer
	}
	rig.rawC, rig.rawPeer = untimed(tcpPair(b))
	for _, mode := range throughputModes {
		c, peer := untimed(tcpPair(b))
		rig.servers[mode], rig.clients[mode] = New(c), New(peer)
	}
	return rig
}

// raw moves one body with plain writes and io.CopyBuffer, the baseline.
func (rig *throughputRig) raw(b *testing.B) {
	errc := make(chan error, 1)
	go func() {
		for left := rig.size; left > 0; {
			n, err := rig.rawPeer.Write(rig.piece[:min(left, int64(len(rig.piece)))])
			if err != nil {
				errc <- err
				return
			}
			left -= int64(n)
		}
		errc <- nil
	}()
	n, err := io.CopyBuffer(writerOnly{io.Discard}, io.LimitReader(rig.rawC, rig.size), rig.buf)
	if err != nil || n != rig.size {
		b.Fatalf("copied %d of %d: %v", n, rig.size, err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// symsock moves one request body from a symsock client (WriteRequestMetadata, Write, WriteEndOfMessage) to a
// symsock server (ReadRequest, then ReadSome into the reused Body or BodyReader), which answers 200.
func (rig *throughputRig) symsock(b *testing.B, mode string) {
	server, client := rig.servers[mode], rig.clients[mode]
	errc := make(chan error, 1)
	go func() {
		req := &Request{Method: "POST", Target: "/upload", Header: http.Header{"Host": {"bench"}}}
		if mode == "content-length" {
			req.Header.Set("Content-Length", strconv.FormatInt(rig.size, 10))
		}
		if err := client.WriteRequestMetadata(req); err != nil {
			errc <- err
			return
		}
		for left := rig.size; left > 0; {
			req.Body = rig.piece[:min(left, int64(len(rig.piece)))]
			if err := client.Write(req); err != nil {
				errc <- err
				return
			}
			left -= int64(len(req.Body))
		}
		errc <- client.WriteEndOfMessage()
	}()
	req := rig.req
	if err := server.ReadRequest(req); err != nil {
		b.Fatal(err)
	}
	got := int64(len(req.Body))
	if mode == "chunked-bodyreader" {
		// BodyReader yields the bytes ReadRequest already appended too.
		n, err := io.CopyBuffer(writerOnly{io.Discard}, server.BodyReader(req), rig.buf)
		if err != nil {
			b.Fatal(err)
		}
		got = n
	} else {
		for server.ReadState() != ReadFinished {
			req.Body = req.Body[:0]
			if err := server.ReadSome(req); err != nil {
				b.Fatal(err)
			}
			got += int64(len(req.Body))
		}
	}
	if got != rig.size {
		b.Fatalf("received %d of %d bytes", got, rig.size)
	}
	if err := server.WriteResponse(rig.response); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBodyThroughput moves a body over loopback TCP: raw TCP io.Copy (the baseline) and symsock bodies with
// Content-Length and chunked framing. Compare the MB/s of the sub-benchmarks of one run; under load prefer
// BenchmarkBodyThroughputInterleaved.
func BenchmarkBodyThroughput(b *testing.B) {
	rig := newThroughputRig(b)
	b.Run("raw-tcp", func(b *testing.B) {
		b.SetBytes(rig.size)
		for i := 0; i < b.N; i++ {
			rig.raw(b)
		}
	})
	for _, mode := range throughputModes {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(rig.size)
			for i := 0; i < b.N; i++ {
				rig.symsock(b, mode)
			}
		})
	}
}

// BenchmarkBodyThroughputInterleaved alternates raw TCP and each symsock framing within every iteration, so a
// machine whose load changes during the run affects all alike, and reports each one's MB/s and its ratio to raw
// TCP (x-raw: 1 means as fast as raw TCP), by wall time and by the process's CPU time (cpu-x-raw: 1 means the
// same CPU cost per byte as raw TCP, sender and receiver together).
func BenchmarkBodyThroughputInterleaved(b *testing.B) {
	rig := newThroughputRig(b)
	wall := map[string]time.Duration{}
	cpu := map[string]time.Duration{}
	measure := func(name string, transfer func()) {
		start, startCPU := time.Now(), processCPU()
		transfer()
		wall[name] += time.Since(start)
		cpu[name] += processCPU() - startCPU
	}
	b.SetBytes(rig.size * int64(1+len(throughputModes)))
	for i := 0; i < b.N; i++ {
		measure("raw", func() { rig.raw(b) })
		for _, mode := range throughputModes {
			measure(mode, func() { rig.symsock(b, mode) })
		}
	}
	mbps := func(d time.Duration) float64 { return float64(rig.size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(wall["raw"]), "raw-MB/s")
	for _, mode := range throughputModes {
		b.ReportMetric(mbps(wall[mode]), mode+"-MB/s")
		b.ReportMetric(wall["raw"].Seconds()/wall[mode].Seconds(), mode+"-x-raw")
		if cpu[mode] > 0 {
			b.ReportMetric(cpu["raw"].Seconds()/cpu[mode].Seconds(), mode+"-cpu-x-raw")
		}
	}
}

// loopConn replays data forever and discards writes: a pipelined stream of identical requests without I/O cost.
type loopConn struct {
	memConn
	data []byte
	off  int
}

func (c *loopConn) Read(p []byte) (int, error) {
	n := copy(p, c.data[c.off:])
	c.off = (c.off + n) % len(c.data)
	return n, nil
}

func (c *loopConn) Write(p []byte) (int, error) { return len(p), nil }

// benchRequest is what curl sends for a GET with a couple of extra headers.
const benchRequest = "GET /index.html?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n" +
	"Accept-Encoding: gzip\r\nX-Request-Id: 4f1c2a\r\n\r\n"

// BenchmarkReadRequest parses one keep-alive GET into a reused Request; the baseline is net/http's ReadRequest
// over a bufio.Reader on the same stream. The socket's states are reset directly so only parsing is measured.
func BenchmarkReadRequest(b *testing.B) {
	b.Run("net-http", func(b *testing.B) {
		br := bufio.NewReader(&loopConn{data: []byte(benchRequest)})
		b.ReportAllocs()
		b.SetBytes(int64(len(benchRequest)))
		for i := 0; i < b.N; i++ {
			req, err := http.ReadRequest(br)
			if err != nil || req.Host != "127.0.0.1:8080" {
				b.Fatal(err)
			}
		}
	})
	b.Run("symsock", func(b *testing.B) {
		s := New(&loopConn{data: []byte(benchRequest)})
		var req Request
		b.ReportAllocs()
		b.SetBytes(int64(len(benchRequest)))
		for i := 0; i < b.N; i++ {
			if err := s.ReadRequest(&req); err != nil || req.Header.Get("Host") != "127.0.0.1:8080" {
				b.Fatal(err)
			}
			s.mu.Lock()
			s.rstate, s.wstate = ReadEmpty, WriteFinished
			s.mu.Unlock()
		}
	})
}

// BenchmarkWriteResponse formats and writes a small response with a few headers; the baseline is net/http's
// Response.Write of the same response.
func BenchmarkWriteResponse(b *testing.B) {
	body := []byte("Hello, World!\n")
	header := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Date": {"Tue, 24 Nov 2026 01:00:00 GMT"},
		"Cache-Control": {"no-store"}}
	b.Run("net-http", func(b *testing.B) {
		w := bufio.NewWriter(io.Discard)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			res := http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: header,
				ContentLength: int64(len(body)), Body: io.NopCloser(bytesReader(body))}
			if err := res.Write(w); err != nil {
				b.Fatal(err)
			}
			w.Flush()
		}
	})
	b.Run("symsock", func(b *testing.B) {
		s := New(&loopConn{data: []byte(r0)})
		var req Request
		require.NoError(b, s.ReadRequest(&req))
		res := &Response{Status: 200, Header: header, Body: body}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			s.mu.Lock()
			s.role, s.rstate, s.wstate, s.keepAlive = roleServer, ReadFinished, WriteEmpty, true
			s.mu.Unlock()
			if err := s.WriteResponse(res); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type sliceReader struct {
	b   []byte
	off int
}

func bytesReader(b []byte) *sliceReader { return &sliceReader{b: b} }

func (r *sliceReader) Read(p []byte) (int, error) {
	if r.off == len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

var _ net.Conn = (*loopConn)(nil)
