package signalserver

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stores runs fn once per Store: in memory, and on a real Redis (see
// redis_test.go). start makes a server on that store; on Redis, servers that
// one run starts share the store (instances of one deployment).
func stores(t *testing.T, fn func(t *testing.T, start func(Config) *testServer)) {
	t.Run("memory", func(t *testing.T) {
		var shared Store
		fn(t, func(cfg Config) *testServer {
			if shared == nil {
				shared = NewMemoryStore()
				t.Cleanup(func() { shared.Close() })
			}
			cfg.Store = shared
			return startServer(t, cfg)
		})
	})
	t.Run("redis", func(t *testing.T) {
		rs := startRedis(t)
		fn(t, func(cfg Config) *testServer {
			cfg.Store = rs.store(t)
			return startServer(t, cfg)
		})
	})
}

// TestMeetAndExchange: a host and a guest meet, exchange messages both ways,
// and the guest hears "peer left" once it drained the host's messages after
// the host closed.
func TestMeetAndExchange(t *testing.T) {
	stores(t, func(t *testing.T, start func(Config) *testServer) {
		ts := start(testConfig())
		host, guest := signal.NewPeerID(), signal.NewPeerID()
		m := meet(t, ts.URL, ts.URL, "7", host, guest)

		// The guest's recv parks, then the host's message wakes it.
		rc := asyncPost(ts.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: guest, After: 0})
		waitParked(t, ts.Server, 1)
		wantStatus(t, "host send 0", post(ts.URL, signal.SendPath, m, signal.SendRequest{PeerID: host, Seq: 0, Body: []byte("B")}), http.StatusOK)
		r := recvFrom(t, rc, "guest recv")
		wantStatus(t, "guest recv", r, http.StatusOK)
		var rr signal.RecvResponse
		r.decode(t, &rr)
		require.Equal(t, []signal.Message{{Seq: 0, Body: []byte("B")}}, rr.Messages, "guest recv")
		for i, body := range []string{"A0", "A1"} {
			wantStatus(t, "guest send", post(ts.URL, signal.SendPath, m, signal.SendRequest{PeerID: guest, Seq: i, Body: []byte(body)}), http.StatusOK)
		}
		r = post(ts.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: host, After: 1})
		wantStatus(t, "host recv", r, http.StatusOK)
		rr = signal.RecvResponse{}
		r.decode(t, &rr)
		require.Equal(t, []signal.Message{{Seq: 1, Body: []byte("A1")}}, rr.Messages, "host recv after 1")

		// The host sends its last message and closes; the guest drains it,
		// then hears that the host left.
		wantStatus(t, "host send 1", post(ts.URL, signal.SendPath, m, signal.SendRequest{PeerID: host, Seq: 1, Body: []byte("last")}), http.StatusOK)
		wantStatus(t, "host close", post(ts.URL, signal.ClosePath, m, signal.CloseRequest{PeerID: host}), http.StatusOK)
		r = post(ts.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: guest, After: 1})
		wantStatus(t, "guest drain", r, http.StatusOK)
		r = post(ts.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: guest, After: 2})
		wantStatus(t, "guest after close", r, http.StatusGone)
		require.Equal(t, signal.MsgPeerLeft, r.errorMsg(t), "after close")
		r = post(ts.URL, signal.SendPath, m, signal.SendRequest{PeerID: guest, Seq: 2, Body: []byte("x")})
		wantStatus(t, "guest send after close", r, http.StatusGone)
	})
}

// TestGuestBeforeHost: a guest that waits is met as soon as a host claims.
func TestGuestBeforeHost(t *testing.T) {
	stores(t, func(t *testing.T, start func(Config) *testServer) {
		ts := start(testConfig())
		host, guest := signal.NewPeerID(), signal.NewPeerID()
		gc := asyncPost(ts.URL, signal.GuestPath, "12", guestReq(guest))
		waitParked(t, ts.Server, 1)
		h := post(ts.URL, signal.HostPath, "12", hostReq(host))
		wantStatus(t, "host", h, http.StatusOK)
		g := recvFrom(t, gc, "guest")
		wantStatus(t, "guest", g, http.StatusOK)
		var hr signal.HostResponse
		var gr signal.GuestResponse
		h.decode(t, &hr)
		g.decode(t, &gr)
		require.Equal(t, []string{gr.Meeting}, hr.Meetings, "host's meetings, guest's")
		require.NoError(t, signal.ValidateMeetingID(gr.Meeting), "guest's meeting")
		// A guest re-post is idempotent.
		g = post(ts.URL, signal.GuestPath, "12", guestReq(guest))
		wantStatus(t, "guest again", g, http.StatusOK)
		var again signal.GuestResponse
		g.decode(t, &again)
		require.Equal(t, gr.Meeting, again.Meeting, "re-post's meeting, first's")
	})
}

// TestHostBetweenPolls: a guest that arrives while the host is between polls
// (within the grace) meets it at once; the host's next poll brings the
// meeting. Two guests get two meetings.
func TestHostBetweenPolls(t *testing.T) {
	stores(t, func(t *testing.T, start func(Config) *testServer) {
		cfg := testConfig()
		cfg.PollWait, cfg.Grace = 300*time.Millisecond, 3*time.Second
		ts := start(cfg)
		host := signal.NewPeerID()
		wantStatus(t, "host poll", post(ts.URL, signal.HostPath, "99999", hostReq(host)), http.StatusAccepted)
		var ms []string
		for range 2 {
			g := post(ts.URL, signal.GuestPath, "99999", guestReq(signal.NewPeerID()))
			wantStatus(t, "guest", g, http.StatusOK)
			var gr signal.GuestResponse
			g.decode(t, &gr)
			ms = append(ms, gr.Meeting)
		}
		h := post(ts.URL, signal.HostPath, "99999", hostReq(host))
		wantStatus(t, "host re-poll", h, http.StatusOK)
		var hr signal.HostResponse
		h.decode(t, &hr)
		require.Equal(t, ms, hr.Meetings, "host's meetings, guests'")
		require.NotEqual(t, ms[0], ms[1], "two guests, two meetings")
	})
}

// TestClaims: another host gets 409; a released or lapsed claim's peer ID
// gets 410 (a replayed request cannot take the nameplate back); a released
// nameplate is free at once.
func TestClaims(t *testing.T) {
	stores(t, func(t *testing.T, start func(Config) *testServer) {
		cfg := testConfig()
		cfg.PollWait, cfg.Grace = 200*time.Millisecond, 200*time.Millisecond
		ts := start(cfg)
		a, b := signal.NewPeerID(), signal.NewPeerID()
		wantStatus(t, "a claims", post(ts.URL, signal.HostPath, "5", hostReq(a)), http.StatusAccepted)
		r := post(ts.URL, signal.HostPath, "5", hostReq(b))
		wantStatus(t, "b claims", r, http.StatusConflict)
		require.Equal(t, signal.MsgNameplateInUse, r.errorMsg(t), "409 says")
		wantStatus(t, "a releases", post(ts.URL, signal.ReleasePath, "5", signal.ReleaseRequest{PeerID: a}), http.StatusOK)
		wantStatus(t, "b claims after release", post(ts.URL, signal.HostPath, "5", hostReq(b)), http.StatusAccepted)
		r = post(ts.URL, signal.HostPath, "5", hostReq(a))
		wantStatus(t, "a replayed", r, http.StatusGone)
		require.Equal(t, signal.MsgClaimEnded, r.errorMsg(t), "410 says")
		// b stays away longer than the grace: its claim lapses.
		time.Sleep(cfg.Grace + 200*time.Millisecond)
		wantStatus(t, "b back after the grace", post(ts.URL, signal.HostPath, "5", hostReq(b)), http.StatusGone)
		wantStatus(t, "c claims", post(ts.URL, signal.HostPath, "5", hostReq(signal.NewPeerID())), http.StatusAccepted)
	})
}

// TestHangUpFreesAtOnce: a parked host whose connection closes is gone at
// once: its slot is free, its nameplate claimable, and a guest does not meet
// a ghost.
func TestHangUpFreesAtOnce(t *testing.T) {
	stores(t, func(t *testing.T, start func(Config) *testServer) {
		cfg := testConfig()
		cfg.PollWait = 20 * time.Second
		ts := start(cfg)
		conn := rawPost(t, ts.Addr, signal.ExpandPath(signal.HostPath, "77"), hostReq(signal.NewPeerID()))
		waitParked(t, ts.Server, 1)
		conn.Close()
		waitParked(t, ts.Server, 0)
		gc := asyncPost(ts.URL, signal.GuestPath, "77", guestReq(signal.NewPeerID()))
		waitParked(t, ts.Server, 1) // the guest waits: no host
		wantStatus(t, "new host", post(ts.URL, signal.HostPath, "77", hostReq(signal.NewPeerID())), http.StatusOK)
		wantStatus(t, "guest", recvFrom(t, gc, "guest"), http.StatusOK)
	})
}

// TestPeerLeft: a meeting side whose parked recv hangs up and does not come
// back within the grace has left: the other side's parked recv hears so.
func TestPeerLeft(t *testing.T) {
	stores(t, func(t *testing.T, start func(Config) *testServer) {
		ts := start(testConfig())
		host, guest := signal.NewPeerID(), signal.NewPeerID()
		m := meet(t, ts.URL, ts.URL, "8", host, guest)
		hc := asyncPost(ts.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: host})
		conn := rawPost(t, ts.Addr, signal.ExpandPath(signal.RecvPath, m), signal.RecvRequest{PeerID: guest})
		waitParked(t, ts.Server, 2)
		closed := time.Now()
		conn.Close()
		r := recvFrom(t, hc, "host recv")
		wantStatus(t, "host recv", r, http.StatusGone)
		require.Equal(t, signal.MsgPeerLeft, r.errorMsg(t), "410 says")
		require.GreaterOrEqual(t, time.Since(closed), 300*time.Millisecond, "peer left before the grace")
	})
}

// TestSendRules: seq rules, idempotent retries, caps and membership.
func TestSendRules(t *testing.T) {
	stores(t, func(t *testing.T, start func(Config) *testServer) {
		cfg := testConfig()
		cfg.MaxMessages = 3
		ts := start(cfg)
		host, guest := signal.NewPeerID(), signal.NewPeerID()
		m := meet(t, ts.URL, ts.URL, "9", host, guest)
		send := func(peer string, seq int, body string) response {
			return post(ts.URL, signal.SendPath, m, signal.SendRequest{PeerID: peer, Seq: seq, Body: []byte(body)})
		}
		for _, tc := range []struct {
			what   string
			r      response
			status int
		}{
			{"first", send(guest, 0, "a"), 200},
			{"retry", send(guest, 0, "a"), 200},
			{"same seq other body", send(guest, 0, "b"), 409},
			{"gap", send(guest, 2, "c"), 400},
			{"next", send(guest, 1, "b"), 200},
			{"last", send(guest, 2, "c"), 200},
			{"over the cap", send(guest, 3, "d"), 413},
			{"too big", send(guest, 2, strings.Repeat("x", signal.MaxMessageBytes+1)), 413},
			{"empty", send(host, 0, ""), 400},
			{"stranger", send(signal.NewPeerID(), 0, "x"), 403},
			{"unknown meeting", post(ts.URL, signal.SendPath, signal.NewMeetingID(), signal.SendRequest{PeerID: host, Seq: 0, Body: []byte("x")}), 404},
		} {
			assert.NoError(t, tc.r.err, tc.what)
			assert.Equal(t, tc.status, tc.r.status, "%s: %s", tc.what, tc.r.body)
		}
		r := post(ts.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: host})
		var rr signal.RecvResponse
		r.decode(t, &rr)
		var got []string
		for _, msg := range rr.Messages {
			got = append(got, fmt.Sprint(msg.Seq, string(msg.Body)))
		}
		require.Equal(t, []string{"0a", "1b", "2c"}, got, "host received")
	})
}

// TestBadRequests: malformed requests get a JSON 4xx, never a panic.
func TestBadRequests(t *testing.T) {
	ts := startServer(t, testConfig())
	id := signal.NewPeerID()
	big := `{"version":2,"peer_id":"` + id + `","x":"` + strings.Repeat("a", signal.MaxRequestBytes) + `"}`
	for _, tc := range []struct {
		what, method, path, body string
		status                   int
	}{
		{"nameplate 0", "POST", "/v2/nameplates/0/host", `{"version":2,"peer_id":"` + id + `"}`, 400},
		{"nameplate leading zero", "POST", "/v2/nameplates/07/guest", `{"version":2,"peer_id":"` + id + `"}`, 400},
		{"nameplate too big", "POST", "/v2/nameplates/100000/host", `{"version":2,"peer_id":"` + id + `"}`, 400},
		{"version 1", "POST", "/v2/nameplates/7/host", `{"version":1,"peer_id":"` + id + `"}`, 400},
		{"no version", "POST", "/v2/nameplates/7/guest", `{"peer_id":"` + id + `"}`, 400},
		{"short peer id", "POST", "/v2/nameplates/7/host", `{"version":2,"peer_id":"abc"}`, 400},
		{"upper-case peer id", "POST", "/v2/nameplates/7/host", `{"version":2,"peer_id":"` + strings.ToUpper(id) + `"}`, 400},
		{"unknown field", "POST", "/v2/nameplates/7/host", `{"version":2,"peer_id":"` + id + `","room":"x"}`, 400},
		{"trailing data", "POST", "/v2/nameplates/7/host", `{"version":2,"peer_id":"` + id + `"} {}`, 400},
		{"not json", "POST", "/v2/nameplates/7/host", `hello`, 400},
		{"body too big", "POST", "/v2/nameplates/7/host", big, 413},
		{"bad meeting id", "POST", "/v2/meetings/xyz/recv", `{"peer_id":"` + id + `","after":0}`, 400},
		{"negative after", "POST", "/v2/meetings/" + signal.NewMeetingID() + "/recv", `{"peer_id":"` + id + `","after":-1}`, 400},
		{"bad base64", "POST", "/v2/meetings/" + signal.NewMeetingID() + "/send", `{"peer_id":"` + id + `","seq":0,"body":"!!"}`, 400},
		{"GET on a POST endpoint", "GET", "/v2/nameplates/7/host", ``, 405},
		{"v1 is gone", "POST", "/v1/rooms/" + strings.Repeat("a", 64), `{}`, 404},
		{"unknown path", "GET", "/nope", ``, 404},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
		res, err := testClient.Do(req)
		require.NoError(t, err, tc.what)
		var body strings.Builder
		bufio.NewReader(res.Body).WriteTo(&body)
		res.Body.Close()
		assert.Equal(t, tc.status, res.StatusCode, "%s: %q", tc.what, body.String())
		assert.Equal(t, "application/json", res.Header.Get("Content-Type"), tc.what)
		assert.Contains(t, body.String(), `"error"`, "%s: want a JSON error", tc.what)
	}
}

// TestShutdownHandsBack: Close answers parked polls with 202 on a closing
// connection (they post again, to another instance), and the host stays
// present through the grace.
func TestShutdownHandsBack(t *testing.T) {
	stores(t, func(t *testing.T, start func(Config) *testServer) {
		cfg := testConfig()
		cfg.PollWait, cfg.Grace = 20*time.Second, 3*time.Second
		a := start(cfg)
		b := start(cfg)
		host := signal.NewPeerID()
		hc := asyncPost(a.URL, signal.HostPath, "31", hostReq(host))
		waitParked(t, a.Server, 1)
		go a.stop()
		r := recvFrom(t, hc, "host poll at shutdown")
		wantStatus(t, "host poll at shutdown", r, http.StatusAccepted)
		if t.Name() == "TestShutdownHandsBack/memory" {
			return // one process: nobody else to hand over to
		}
		// The host posts again to the other instance: its claim is intact.
		hc = asyncPost(b.URL, signal.HostPath, "31", hostReq(host))
		waitParked(t, b.Server, 1)
		wantStatus(t, "guest", post(b.URL, signal.GuestPath, "31", guestReq(signal.NewPeerID())), http.StatusOK)
		wantStatus(t, "host", recvFrom(t, hc, "host"), http.StatusOK)
	})
}

// rawPost sends a POST on a connection of its own and returns the
// connection without reading the answer.
func rawPost(t testing.TB, addr, path string, body any) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	b := mustJSON(body)
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(b), b)
	return conn
}

// TestHealthz: 200 with the store's kind.
func TestHealthz(t *testing.T) {
	ts := startServer(t, testConfig())
	res, err := testClient.Get(ts.URL + "/healthz")
	require.NoError(t, err)
	defer res.Body.Close()
	var h signal.HealthResponse
	require.NoError(t, jsonDecode(res, &h), "healthz")
	require.Equal(t, 200, res.StatusCode, "healthz")
	require.Equal(t, "ok", h.Status, "healthz status")
	require.Equal(t, "memory", h.Store, "healthz store")
}

// TestInHandlerWaiting: where the connection cannot be hijacked, a poll
// waits in its handler: it is woken, answered, and a client that hangs up
// frees its slot at once.
func TestInHandlerWaiting(t *testing.T) {
	s := New(testConfig())
	defer s.Close()
	hidden := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(struct{ http.ResponseWriter }{w}, r) // hides http.Hijacker
	})
	hs := httptest.NewServer(hidden)
	defer hs.Close()
	host, guest := signal.NewPeerID(), signal.NewPeerID()
	m := meet(t, hs.URL, hs.URL, "21", host, guest)
	rc := asyncPost(hs.URL, signal.RecvPath, m, signal.RecvRequest{PeerID: guest})
	waitParked(t, s, 1)
	wantStatus(t, "send", post(hs.URL, signal.SendPath, m, signal.SendRequest{PeerID: host, Body: []byte("x")}), http.StatusOK)
	wantStatus(t, "recv", recvFrom(t, rc, "recv"), http.StatusOK)

	conn := rawPost(t, hs.Listener.Addr().String(), signal.ExpandPath(signal.GuestPath, "22"), guestReq(signal.NewPeerID()))
	waitParked(t, s, 1)
	conn.Close()
	waitParked(t, s, 0)
}

// TestDuplicatePoll: a second poll of the same peer takes over; the first
// answers 202 at once.
func TestDuplicatePoll(t *testing.T) {
	stores(t, func(t *testing.T, start func(Config) *testServer) {
		cfg := testConfig()
		cfg.PollWait = 20 * time.Second
		ts := start(cfg)
		for _, tc := range []struct {
			pattern, np string
			body        any
		}{
			{signal.HostPath, "44", hostReq(signal.NewPeerID())},
			{signal.GuestPath, "45", guestReq(signal.NewPeerID())},
		} {
			first := asyncPost(ts.URL, tc.pattern, tc.np, tc.body)
			waitParked(t, ts.Server, 1)
			second := asyncPost(ts.URL, tc.pattern, tc.np, tc.body)
			wantStatus(t, "first poll "+tc.pattern, recvFrom(t, first, "first poll "+tc.pattern), http.StatusAccepted)
			waitParked(t, ts.Server, 1)
			select {
			case r := <-second:
				t.Fatalf("second poll answered %d %s", r.status, r.body)
			default:
			}
			if tc.pattern == signal.HostPath {
				wantStatus(t, "guest", post(ts.URL, signal.GuestPath, "44", guestReq(signal.NewPeerID())), http.StatusOK)
				wantStatus(t, "second host poll", recvFrom(t, second, "second"), http.StatusOK)
				waitParked(t, ts.Server, 0) // the answered poll is gone before the next case counts
			} else {
				ts.Server.Close() // hands the guest back
				wantStatus(t, "second guest poll", recvFrom(t, second, "second"), http.StatusAccepted)
			}
		}
	})
}
