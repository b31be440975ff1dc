package symsock

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStreamBoundedMemory streams a 64 MiB body (Content-Length and chunked) through ReadSome with the caller
// resetting Body, and through BodyReader, and checks that the bytes allocated meanwhile stay far below the body.
func TestStreamBoundedMemory(t *testing.T) {
	const size = 64 << 20
	piece := make([]byte, 64<<10)
	for i := range piece {
		piece[i] = byte(i)
	}
	for _, mode := range []string{"content-length", "chunked", "bodyreader"} {
		t.Run(mode, func(t *testing.T) {
			c, peer := tcpPair(t)
			s := New(c)
			errc := make(chan error, 1)
			go func() {
				head := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
				if mode != "content-length" {
					head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
				}
				if _, err := io.WriteString(peer, head); err != nil {
					errc <- err
					return
				}
				chunkHead := []byte(strconv.FormatInt(int64(len(piece)), 16) + "\r\n")
				for sent := 0; sent < size; sent += len(piece) {
					bufs := net.Buffers{piece}
					if mode != "content-length" {
						bufs = net.Buffers{chunkHead, piece, []byte("\r\n")}
					}
					if _, err := bufs.WriteTo(peer); err != nil {
						errc <- err
						return
					}
				}
				if mode != "content-length" {
					_, err := io.WriteString(peer, "0\r\nX-Sum: done\r\n\r\n")
					errc <- err
					return
				}
				errc <- nil
			}()

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			req := &Request{Body: make([]byte, 0, 256<<10)}
			require.NoError(t, s.ReadRequest(req))
			var got int64
			check := func(b []byte) {
				for i, c := range b {
					if c != byte((got+int64(i))%int64(len(piece))) {
						t.Fatalf("byte %d = %d", got+int64(i), c)
					}
				}
				got += int64(len(b))
			}
			if mode == "bodyreader" {
				buf := make([]byte, 32<<10)
				r := s.BodyReader(req)
				for {
					n, err := r.Read(buf)
					check(buf[:n])
					if err == io.EOF {
						break
					}
					require.NoError(t, err)
				}
			} else {
				check(req.Body)
				for s.ReadState() != ReadFinished {
					req.Body = req.Body[:0]
					require.NoError(t, s.ReadSome(req))
					check(req.Body)
				}
			}
			runtime.ReadMemStats(&after)
			require.NoError(t, <-errc)
			require.Equal(t, int64(size), got, "body bytes")
			if mode != "content-length" {
				require.Equal(t, "done", req.Trailer.Get("X-Sum"), "trailer")
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d bytes allocated while streaming %d", mode, allocated, size)
			require.LessOrEqual(t, allocated, uint64(size/16), "allocated %d bytes while streaming a %d-byte body", allocated, size)
		})
	}
}

// TestFullDuplex echoes a chunked request body as a chunked response while it is still arriving: one goroutine
// reads while another writes.
func TestFullDuplex(t *testing.T) {
	s, peer := newPair(t)
	req := serverGot(t, s, peer, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
	require.NoError(t, s.WriteResponseMetadata(&Response{Status: 200}))
	expectWire(t, peer, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	pieces := make(chan []byte)
	go func() {
		defer close(pieces)
		for s.ReadState() != ReadFinished {
			req.Body = nil
			if err := s.ReadSome(req); err != nil {
				return
			}
			if len(req.Body) > 0 {
				pieces <- req.Body
			}
		}
	}()
	for _, word := range []string{"ping", "pong", "done"} {
		send(t, peer, "4\r\n"+word+"\r\n")
		res := &Response{Body: <-pieces}
		require.NoError(t, s.Write(res))
		expectWire(t, peer, "4\r\n"+word+"\r\n")
	}
	send(t, peer, "0\r\n\r\n")
	_, ok := <-pieces
	require.False(t, ok, "body continued after the last chunk")
	require.NoError(t, s.WriteEndOfMessage())
	expectWire(t, peer, "0\r\n\r\n")
	states(t, s, ReadEmpty, WriteFinished)
}

// TestCloseUnblocks: Close makes blocked reads and writes return errors wrapping net.ErrClosed.
func TestCloseUnblocks(t *testing.T) {
	s, peer := newPair(t)
	readErr := make(chan error, 1)
	go func() { readErr <- s.ReadRequest(&Request{}) }()
	client, _ := newPair(t)
	writeErr := make(chan error, 1)
	go func() {
		// A request too big for the socket buffers: the peer never reads, so Write blocks.
		req := &Request{Method: "PUT", Target: "/", Header: http.Header{"Host": {"a"}}}
		if err := client.WriteRequestMetadata(req); err != nil {
			writeErr <- err
			return
		}
		req.Body = make([]byte, 64<<20)
		writeErr <- client.Write(req)
	}()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, s.Close())
	require.NoError(t, client.Close())
	for _, ch := range []chan error{readErr, writeErr} {
		select {
		case err := <-ch:
			require.ErrorIs(t, err, net.ErrClosed, "blocked call")
		case <-time.After(testTimeout):
			t.Fatal("Close did not unblock the call")
		}
	}
	require.Equal(t, false, s.IsOpen(), "IsOpen")
	require.NoError(t, s.Close())
	require.ErrorIs(t, client.WriteRequest(&Request{Method: "GET", Target: "/"}), ErrOutOfOrder)
	require.ErrorIs(t, s.ReadRequest(&Request{}), net.ErrClosed)
	expectClosed(t, peer)
}

// TestReadDeadline: a deadline bounds a read of a silent peer; between messages the socket stays usable.
func TestReadDeadline(t *testing.T) {
	s, peer := newPair(t)
	require.NoError(t, s.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	require.ErrorIs(t, s.ReadRequest(&Request{}), os.ErrDeadlineExceeded, "ReadRequest")
	require.Equal(t, true, s.IsOpen(), "IsOpen")
	require.NoError(t, s.SetReadDeadline(time.Now().Add(testTimeout)))
	req := serverGot(t, s, peer, r0)
	require.Equal(t, "GET", req.Method, "method")

	// Inside a message the stream cannot be resumed: the socket closes.
	require.NoError(t, s.WriteResponse(&Response{Status: 200}))
	expectWire(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	send(t, peer, "GET / HTTP/1.1\r\nHo")
	require.NoError(t, s.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	require.ErrorIs(t, s.ReadRequest(req), os.ErrDeadlineExceeded, "ReadRequest")
	require.Equal(t, false, s.IsOpen(), "IsOpen")
}

// TestBodyReader reads a body through BodyReader: the buffered part first, then the rest, trailers at the end,
// and ErrOutOfOrder once the exchange moved on.
func TestBodyReader(t *testing.T) {
	s, peer := newPair(t)
	req := serverGot(t, s, peer, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	r := s.BodyReader(req)
	go func() { _, _ = io.WriteString(peer, "6\r\n world\r\n0\r\nX-T: 1\r\n\r\n") }()
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "hello world", string(got), "body")
	require.Equal(t, "1", req.Trailer.Get("X-T"), "trailer")
	states(t, s, ReadFinished, WriteEmpty)
	n, err := r.Read(make([]byte, 8))
	require.Equal(t, 0, n, "n")
	require.Equal(t, io.EOF, err, "err")
	require.NoError(t, s.WriteResponse(&Response{Status: 200}))
	expectWire(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

	// Early answer: the reader of the old request fails and the rest is drained before the next request.
	req = serverGot(t, s, peer, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
	r = s.BodyReader(req)
	require.NoError(t, s.WriteResponse(&Response{Status: 413}))
	_, err = r.Read(make([]byte, 8))
	require.ErrorIs(t, err, ErrOutOfOrder)
	send(t, peer, "0123456789"+r0)
	req2 := &Request{}
	require.NoError(t, s.ReadRequest(req2))
	require.Equal(t, "GET /", req2.Method+" "+req2.Target, "next")
	_, err = r.Read(make([]byte, 8))
	require.ErrorIs(t, err, ErrOutOfOrder)
}

// TestPipelinedClient pipelines requests with bodies and reads the responses in order, a streamed response with
// trailers among them.
func TestPipelinedClient(t *testing.T) {
	s, peer := newPair(t)
	for i := 0; i < 3; i++ {
		require.NoError(t, s.WriteRequest(&Request{Method: "POST", Target: "/" + strconv.Itoa(i), Header: http.Header{"Host": {"a"}}, Body: []byte("x")}))
	}
	expectWire(t, peer, strings.Repeat("", 0)+
		"POST /0 HTTP/1.1\r\nContent-Length: 1\r\nHost: a\r\n\r\nx"+
		"POST /1 HTTP/1.1\r\nContent-Length: 1\r\nHost: a\r\n\r\nx"+
		"POST /2 HTTP/1.1\r\nContent-Length: 1\r\nHost: a\r\n\r\nx")
	send(t, peer, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"+
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\nX-T: t\r\n\r\n"+
		"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nc")
	var bodies bytes.Buffer
	var res Response
	for i := 0; i < 3; i++ {
		require.NoError(t, s.ReadResponse(&res))
		readWhole(t, s, &res, ReadEmpty)
		bodies.Write(res.Body)
	}
	require.Equal(t, "abc", bodies.String(), "bodies")
	require.Equal(t, 404, res.Status, "status")
	require.Equal(t, true, s.IsOpen(), "IsOpen")
}

// TestChunkedShapes streams chunked bodies of mixed chunk sizes (with and without extensions, the peer writing in
// odd pieces) through ReadSome with several Body capacities and through BodyReader with several buffer sizes, and
// checks the body, the trailer and that the pipelined request behind it is intact.
func TestChunkedShapes(t *testing.T) {
	sizes := []int{1, 5000, 70000, 3, 300000, 4096, 65536, 4095, 8192, 200000, 2}
	var wire bytes.Buffer
	var want bytes.Buffer
	wire.WriteString("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i, n := range sizes {
		data := bytes.Repeat([]byte{byte('a' + i)}, n)
		data[0] = byte('0' + i)
		want.Write(data)
		wire.WriteString(strconv.FormatInt(int64(n), 16))
		if i%3 == 1 {
			wire.WriteString(";ext=" + strconv.Itoa(i))
		}
		wire.WriteString("\r\n")
		wire.Write(data)
		wire.WriteString("\r\n")
	}
	wire.WriteString("0\r\nX-Trailer: yes\r\n\r\n" + r0)
	for _, mode := range []string{"readsome-0", "readsome-4k", "readsome-64k", "readsome-1m", "reader-1", "reader-5000", "reader-64k", "reader-1m"} {
		t.Run(mode, func(t *testing.T) {
			s, peer := newPair(t)
			go func() {
				// Odd write sizes so chunk boundaries land anywhere in the reads.
				b := wire.Bytes()
				for i, step := 0, 1; i < len(b); i, step = i+step, step*3%70001+1 {
					if _, err := peer.Write(b[i:min(i+step, len(b))]); err != nil {
						return
					}
				}
			}()
			capacity := map[string]int{"readsome-0": 0, "readsome-4k": 4 << 10, "readsome-64k": 64 << 10, "readsome-1m": 1 << 20,
				"reader-1": 1, "reader-5000": 5000, "reader-64k": 64 << 10, "reader-1m": 1 << 20}[mode]
			req := &Request{}
			if strings.HasPrefix(mode, "readsome") {
				req.Body = make([]byte, 0, capacity)
			}
			require.NoError(t, s.ReadRequest(req))
			var got bytes.Buffer
			if strings.HasPrefix(mode, "readsome") {
				got.Write(req.Body)
				for s.ReadState() != ReadFinished {
					req.Body = req.Body[:0]
					require.NoError(t, s.ReadSome(req))
					got.Write(req.Body)
				}
			} else {
				_, err := io.CopyBuffer(struct{ io.Writer }{&got}, s.BodyReader(req), make([]byte, capacity))
				require.NoError(t, err)
			}
			require.True(t, bytes.Equal(got.Bytes(), want.Bytes()), "body of %d bytes differs from the %d sent", got.Len(), want.Len())
			require.Equal(t, "yes", req.Trailer.Get("X-Trailer"), "trailer")
			require.NoError(t, s.WriteResponse(&Response{Status: 200}))
			next := &Request{}
			require.NoError(t, s.ReadRequest(next))
			require.Equal(t, "GET / a", next.Method+" "+next.Target+" "+next.Header.Get("Host"), "pipelined")
		})
	}
}
