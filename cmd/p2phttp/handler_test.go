package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/wiretest"
	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

// writeCounter is a net.Conn that counts its Writes: on a stream each becomes at least one datagram.
type writeCounter struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *writeCounter) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}

// serveProxy serves newHandler's --proxy handler for backend on one end of a loopback pair, as serve does on a
// stream, and returns the other end with a reader over it and the counter of the served end's writes.
func serveProxy(t *testing.T, backend string) (net.Conn, *bufio.Reader, *writeCounter) {
	t.Helper()
	h, _, err := newHandler("", backend, false, discardLogger())
	require.NoError(t, err)
	c, peer := wiretest.Pair(t)
	wc := &writeCounter{Conn: c}
	go func() { _ = symhttp.Serve(symsock.New(wc), h) }()
	return peer, bufio.NewReader(peer), wc
}

// A small reply of the web server goes back in one write, head and body together, request after request.
func TestProxySmallReplyIsOneWrite(t *testing.T) {
	body := strings.Repeat("x", 100)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer backend.Close()
	peer, br, wc := serveProxy(t, backend.URL)
	for i := range 3 {
		wiretest.Send(t, peer, fmt.Sprintf("GET /r%d HTTP/1.1\r\nHost: a\r\n\r\n", i))
		res, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		require.NoError(t, err)
		got, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		assert.Equal(t, body, string(got))
		assert.Equal(t, int64(100), res.ContentLength)
		assert.Equal(t, 1, wc.take(), "writes of response %d", i)
	}
}

// Bytes of a reply that stalls still reach the client (within proxyFlushInterval), whether the web server declared
// a length or streams: the web server sends the rest only once the client has the first part.
func TestProxyPassesOnAStalledReply(t *testing.T) {
	for _, declared := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length=%v", declared), func(t *testing.T) {
			gotFirst := make(chan struct{})
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if declared {
					w.Header().Set("Content-Length", "11")
				}
				io.WriteString(w, "first ")
				w.(http.Flusher).Flush()
				<-gotFirst
				io.WriteString(w, "rest!")
			}))
			defer backend.Close()
			defer close(gotFirst)
			peer, br, _ := serveProxy(t, backend.URL)
			wiretest.Send(t, peer, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			res, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
			require.NoError(t, err)
			first := make([]byte, 6)
			_, err = io.ReadFull(res.Body, first)
			require.NoError(t, err)
			assert.Equal(t, "first ", string(first))
			gotFirst <- struct{}{}
			rest, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			assert.Equal(t, "rest!", string(rest))
		})
	}
}

// Requests on many streams at once reuse their connections to the web server, round after round.
func TestProxyKeepsBackendConnectionsAlive(t *testing.T) {
	const parallel, rounds = 8, 4
	var mu sync.Mutex
	opened := 0
	arrived := make(chan struct{}, parallel)
	release := make(chan struct{})
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release // all parallel requests are in flight at once, each on a connection of its own
		io.WriteString(w, "ok")
	}))
	backend.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			opened++
			mu.Unlock()
		}
	}
	backend.Start()
	defer backend.Close()
	h, _, err := newHandler("", backend.URL, false, discardLogger())
	require.NoError(t, err)
	for round := range rounds {
		var wg sync.WaitGroup
		codes := make([]int, parallel)
		for i := range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				codes[i] = rec.Code
			}()
		}
		for range parallel {
			<-arrived
		}
		for range parallel {
			release <- struct{}{}
		}
		wg.Wait()
		for i, c := range codes {
			require.Equal(t, http.StatusOK, c, "round %d request %d", round, i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, parallel, opened, "connections opened to the web server over %d rounds", rounds)
}
