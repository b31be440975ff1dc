package symhttp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// transportTo returns a NewTransport client whose streams are loopback TCP connections to srv.
func transportTo(t *testing.T, srv *symsockServer) (*http.Client, *http.Transport) {
	t.Helper()
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	var d net.Dialer
	tr := NewTransport(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", u.Host) })
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}, tr
}

func TestTransportRunsRequestsConcurrentlyAndReusesIdleStreams(t *testing.T) {
	const n = 20
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	first := true
	var mu sync.Mutex
	srv := startSymsockServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		barrier := first
		mu.Unlock()
		if barrier && r.URL.Path != "/after" {
			// Every request of the first round waits until all n are in flight: only a concurrent client gets
			// past this.
			arrived.Done()
			select {
			case <-all:
			case <-time.After(testTimeout):
				http.Error(w, "not concurrent", http.StatusRequestTimeout)
				return
			}
		}
		io.WriteString(w, r.URL.Path)
	}))
	client, _ := transportTo(t, srv)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client.Get(fmt.Sprintf("http://peer/%d", i))
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err == nil && (res.StatusCode != 200 || string(b) != fmt.Sprintf("/%d", i)) {
				err = fmt.Errorf("request %d: %s %q", i, res.Status, b)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int32(n), srv.accepted.Load(), "streams opened for 20 concurrent requests")
	mu.Lock()
	first = false
	mu.Unlock()

	// Sequential requests reuse the idle streams.
	for range 10 {
		_, body := get(t, client, newReq(t, "GET", "http://peer/after", nil))
		require.Equal(t, "/after", body, "body")
	}
	require.Equal(t, int32(n), srv.accepted.Load(), "streams after 10 more sequential requests")
}

func TestTransportFailedExchangeCostsOnlyItsStream(t *testing.T) {
	release := make(chan struct{})
	srv := startSymsockServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, "slow done")
		case "/boom":
			// The handler breaks its promise mid-body: the server cuts the stream.
			w.Header().Set("Content-Length", "100000")
			io.WriteString(w, strings.Repeat("x", 10000))
		default:
			io.WriteString(w, "fine")
		}
	}))
	client, _ := transportTo(t, srv)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the server's cleanup, which waits for the handler

	slow, err := client.Get("http://peer/slow")
	require.NoError(t, err)
	defer slow.Body.Close()

	res, err := client.Get("http://peer/boom")
	require.NoError(t, err)
	_, err = io.ReadAll(res.Body)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	res.Body.Close()

	// The other stream still works, and new requests get a fresh stream.
	_, body := get(t, client, newReq(t, "GET", "http://peer/next", nil))
	require.Equal(t, "fine", body, "after the failure")
	unblock()
	b, err := io.ReadAll(slow.Body)
	require.NoError(t, err)
	require.Equal(t, "slow done", string(b), "in-flight request on another stream")
}

func TestTransportRefusesHTTPS(t *testing.T) {
	tr := NewTransport(func(context.Context) (net.Conn, error) {
		t.Error("dial called for an https URL")
		return nil, net.ErrClosed
	})
	_, err := (&http.Client{Transport: tr}).Get("https://peer/")
	require.ErrorIs(t, err, errNoTLS)
	require.Contains(t, err.Error(), "http://", "error does not say what to use")
}
