package signalserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type testServer struct {
	*Server
	URL  string // http://127.0.0.1:port
	Addr string
	stop func() error
}

// testConfig has short waits so tests take seconds.
func testConfig() Config {
	return Config{PollWait: 2 * time.Second, Grace: 400 * time.Millisecond, RatePerIP: -1, RoomRatePerIP: -1}
}

// startServer runs a real Server with Serve on a loopback listener.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	ts := &testServer{Server: s, URL: "http://" + l.Addr().String(), Addr: l.Addr().String()}
	var once sync.Once
	var stopErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			stopErr = <-done
		})
		return stopErr
	}
	t.Cleanup(func() {
		assert.NoError(t, ts.stop(), "Serve")
	})
	return ts
}

// response is an answer of the server.
type response struct {
	status int
	header http.Header
	body   []byte
	err    error // transport error
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "decoding %d %q", r.status, r.body)
}

func (r response) errorMsg(t testing.TB) string {
	var e signal.ErrorResponse
	r.decode(t, &e)
	return e.Error
}

// client posts with a fresh connection per request, as a long-poll client
// behind a load balancer would.
var testClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

func post(base, pattern, arg string, body any) response {
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	res, err := testClient.Post(base+signal.ExpandPath(pattern, arg), "application/json", bytes.NewReader(b))
	if err != nil {
		return response{err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: data, err: err}
}

func asyncPost(base, pattern, arg string, body any) <-chan response {
	ch := make(chan response, 1)
	go func() { ch <- post(base, pattern, arg, body) }()
	return ch
}

func wantStatus(t testing.TB, what string, r response, status int) {
	t.Helper()
	require.NoError(t, r.err, what)
	require.Equal(t, status, r.status, "%s: %s", what, strings.TrimSpace(string(r.body)))
}

func recvFrom(t testing.TB, ch <-chan response, what string) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no answer", what)
	}
	return response{}
}

func hostReq(id string) signal.HostRequest {
	return signal.HostRequest{Version: signal.Version, PeerID: id}
}
func guestReq(id string) signal.GuestRequest {
	return signal.GuestRequest{Version: signal.Version, PeerID: id}
}

// waitParked waits until the server has n polls parked: recorded in the
// store and waiting, their slots taken.
func waitParked(t testing.TB, s *Server, n int) {
	t.Helper()
	registered := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.polls)
	}
	deadline := time.Now().Add(10 * time.Second)
	for registered() != n || s.parked.count() != n {
		require.False(t, time.Now().After(deadline), "parked polls: %d (slots %d), want %d", registered(), s.parked.count(), n)
		time.Sleep(5 * time.Millisecond)
	}
}

// meet has a host and a guest meet on nameplate np through servers a (the
// host's) and b (the guest's); it returns the meeting ID.
func meet(t testing.TB, a, b, np, host, guest string) string {
	t.Helper()
	hc := asyncPost(a, signal.HostPath, np, hostReq(host))
	time.Sleep(50 * time.Millisecond)
	g := post(b, signal.GuestPath, np, guestReq(guest))
	wantStatus(t, "guest", g, http.StatusOK)
	var gr signal.GuestResponse
	g.decode(t, &gr)
	for {
		h := recvFrom(t, hc, "host poll")
		if h.status == http.StatusAccepted { // the guest came between polls
			hc = asyncPost(a, signal.HostPath, np, hostReq(host))
			continue
		}
		wantStatus(t, "host", h, http.StatusOK)
		var hr signal.HostResponse
		h.decode(t, &hr)
		require.Equal(t, []string{gr.Meeting}, hr.Meetings, "host's meetings, guest's")
		return gr.Meeting
	}
}

func jsonDecode(res *http.Response, v any) error { return json.NewDecoder(res.Body).Decode(v) }
