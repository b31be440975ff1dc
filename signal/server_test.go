package signal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestBadRequests(t *testing.T) {
	s := startServer(t, ServerConfig{MaxBodyBytes: 1024, MaxHeaderBytes: 1024, RatePerIP: -1})
	room := roomHex(1)
	manyCands := `{"version":1,"peer_id":"` + strings.Repeat("a", 32) + `","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","candidates":[` +
		strings.TrimSuffix(strings.Repeat(`{"kind":"host","addr":"127.0.0.1:9"},`, 17), ",") + `]}`
	offerWith := func(old, new string) string { return strings.Replace(rawOffer(1), old, new, 1) }
	tests := []struct {
		name    string
		raw     string
		status  int
		errHas  string
		allow   string
		noJSONs bool // net/http itself answers, in text/plain
	}{
		{"GET on room", "GET /v1/rooms/" + room + " HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method GET not allowed", "POST", false},
		{"PUT on room", "PUT /v1/rooms/" + room + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "not allowed", "POST", false},
		{"POST healthz", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "not allowed", "GET, HEAD", false},
		{"DELETE metrics", "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405, "not allowed", "GET, HEAD", false},
		{"unknown path", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no such endpoint", "", false},
		{"unknown v1 path", "POST /v1/meet HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, "no such endpoint", "", false},
		{"room id too short", postRaw("abc", rawOffer(1)), 400, "invalid room id", "", false},
		{"room id upper case", postRaw(strings.ToUpper(roomHex(0xabc)), rawOffer(1)), 400, "invalid room id", "", false},
		{"room id with slash", postRaw(roomHex(1)+"/x", rawOffer(1)), 400, "invalid room id", "", false},
		{"empty room id", postRaw("", rawOffer(1)), 400, "invalid room id", "", false},
		{"empty body", postRaw(room, ""), 400, "invalid JSON", "", false},
		{"malformed JSON", postRaw(room, `{"version":1,`), 400, "invalid JSON", "", false},
		{"not an object", postRaw(room, `[1,2]`), 400, "invalid JSON", "", false},
		{"trailing data", postRaw(room, rawOffer(1)+`{}`), 400, "invalid JSON", "", false},
		{"wrong type", postRaw(room, offerWith(`"version":1`, `"version":"1"`)), 400, `field "version" has the wrong type`, "", false},
		{"other version", postRaw(room, offerWith(`"version":1`, `"version":2`)), 400, "unsupported protocol version 2", "", false},
		{"no version", postRaw(room, offerWith(`"version":1,`, ``)), 400, "unsupported protocol version 0", "", false},
		{"short peer id", postRaw(room, offerWith(`"peer_id":"`, `"peer_id":"x`)), 400, "peer_id must be", "", false},
		{"upper peer id", postRaw(room, offerWith(fmt.Sprintf("%032x", 1), strings.Repeat("A", 32))), 400, "peer_id must be", "", false},
		{"no candidates", postRaw(room, offerWith(`[{"kind":"host","addr":"127.0.0.1:1001"}]`, `[]`)), 400, "want 1 to 16 candidates, got 0", "", false},
		{"too many candidates", postRaw(room, manyCands), 400, "want 1 to 16 candidates, got 17", "", false},
		{"bad kind", postRaw(room, offerWith(`"host"`, `"relay"`)), 400, `kind "relay"`, "", false},
		{"addr without port", postRaw(room, offerWith(`127.0.0.1:1001`, `127.0.0.1`)), 400, "invalid JSON", "", false},
		{"addr port 0", postRaw(room, offerWith(`127.0.0.1:1001`, `127.0.0.1:0`)), 400, "not a usable ip:port", "", false},
		{"addr unspecified", postRaw(room, offerWith(`127.0.0.1:1001`, `0.0.0.0:1`)), 400, "not a usable ip:port", "", false},
		{"addr hostname", postRaw(room, offerWith(`127.0.0.1:1001`, `example.com:1`)), 400, "invalid JSON", "", false},
		{"mac missing", postRaw(room, offerWith(`,"mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`, ``)), 400, "mac must be 32 bytes", "", false},
		{"mac not base64", postRaw(room, offerWith(`"mac":"`, `"mac":"!`)), 400, "invalid JSON", "", false},
		{"body over limit", postRaw(room, rawOffer(1)+strings.Repeat(" ", 1100)), 413, "request body over 1024 bytes", "", false},
		{"chunked body over limit", "POST /v1/rooms/" + room + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"800\r\n" + strings.Repeat(" ", 0x800) + "\r\n0\r\n\r\n", 413, "request body over", "", false},
		{"headers over limit", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n", 431, "", "", true},
		{"not HTTP", "HELLO\r\n\r\n", 400, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawDo(t, s.Addr, tt.raw)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d; body %q", r.Status, tt.status, r.Body)
			}
			if tt.noJSONs {
				return
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if !strings.Contains(r.Error, tt.errHas) || r.Error == "" {
				t.Errorf("error %q does not contain %q (body %q)", r.Error, tt.errHas, r.Body)
			}
			if got := r.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
	// Nothing above created a room, and the server still serves.
	if got := metric(t, s, "p2phttp_signal_rooms"); got != 0 {
		t.Errorf("rooms = %v", got)
	}
	if got := metric(t, s, `p2phttp_signal_refusals_total{reason="bad_request"}`); got < 20 {
		t.Errorf("bad_request refusals = %v", got)
	}
}

func TestHealthz(t *testing.T) {
	s := startServer(t, ServerConfig{})
	r := rawDo(t, s.Addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if r.Status != 200 || string(r.Body) != "{\"status\":\"ok\"}\n" {
		t.Fatalf("%d %q", r.Status, r.Body)
	}
}

// TestRawMeet runs the protocol over raw HTTP: the first peer parks, the
// second gets the first's offer at once, the first then gets the second's,
// and the room is freed.
func TestRawMeet(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1})
	room := roomHex(7)
	first := asyncPost(t, s.Addr, postRaw(room, rawOffer(2)))
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 1)
	second := rawDo(t, s.Addr, postRaw(room, rawOffer(1)))
	got1 := recv(t, first)
	for i, r := range []rawResponse{second, got1} {
		if r.Status != 200 {
			t.Fatalf("response %d: %d %q", i, r.Status, r.Body)
		}
	}
	var a1, a2 answer
	json.Unmarshal(got1.Body, &a1)
	json.Unmarshal(second.Body, &a2)
	if a1.Room != room || a2.Room != room {
		t.Errorf("rooms %q %q", a1.Room, a2.Room)
	}
	if a1.Peer.PeerID != fmt.Sprintf("%032x", 1) || a2.Peer.PeerID != fmt.Sprintf("%032x", 2) {
		t.Errorf("peers %q %q", a1.Peer.PeerID, a2.Peer.PeerID)
	}
	if a1.Dialer || !a2.Dialer { // peer 1 has the lower ID
		t.Errorf("dialer: first %v second %v", a1.Dialer, a2.Dialer)
	}
	if !got1.Close {
		t.Errorf("parked answer should close the connection: %v", got1.Header)
	}
	waitMetric(t, s, "p2phttp_signal_rooms", 0)
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 0)
	if got := metric(t, s, "p2phttp_signal_meets_total"); got != 1 {
		t.Errorf("meets = %v", got)
	}
}

// TestThirdJoinerRefused: while a met room still holds a peer that has not
// picked up its answer, a third peer is refused with 409.
func TestThirdJoinerRefused(t *testing.T) {
	// The first peer's poll ends after PollWait; it stays in the room for
	// another PollWait, in which the other two must arrive.
	s := startServer(t, ServerConfig{RatePerIP: -1, PollWait: time.Second})
	room := roomHex(9)
	if r := rawDo(t, s.Addr, postRaw(room, rawOffer(1))); r.Status != 202 || string(r.Body) != "{\"status\":\"waiting\"}\n" {
		t.Fatalf("first poll: %d %q", r.Status, r.Body)
	}
	if r := rawDo(t, s.Addr, postRaw(room, rawOffer(2))); r.Status != 200 {
		t.Fatalf("second: %d %q", r.Status, r.Body)
	}
	r := rawDo(t, s.Addr, postRaw(room, rawOffer(3)))
	if r.Status != 409 || !strings.Contains(r.Error, "room full") {
		t.Fatalf("third: %d %q", r.Status, r.Body)
	}
	// The first peer re-polls (not a new peer) and gets its answer.
	r = rawDo(t, s.Addr, postRaw(room, rawOffer(1)))
	var a answer
	if r.Status != 200 || json.Unmarshal(r.Body, &a) != nil || a.Peer.PeerID != fmt.Sprintf("%032x", 2) {
		t.Fatalf("re-poll: %d %q", r.Status, r.Body)
	}
	waitMetric(t, s, "p2phttp_signal_rooms", 0)
	if got := metric(t, s, `p2phttp_signal_refusals_total{reason="room_full"}`); got != 1 {
		t.Errorf("room_full refusals = %v", got)
	}
}

// TestLongPollTimeoutRepoll: a poll ends with 202 after PollWait; the peer
// re-polls with the same peer ID and is the same peer, not a second one.
func TestLongPollTimeoutRepoll(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1, PollWait: 150 * time.Millisecond})
	room := roomHex(11)
	start := time.Now()
	for i := 0; i < 3; i++ {
		if r := rawDo(t, s.Addr, postRaw(room, rawOffer(1))); r.Status != 202 {
			t.Fatalf("poll %d: %d %q", i, r.Status, r.Body)
		}
	}
	if d := time.Since(start); d < 3*150*time.Millisecond {
		t.Errorf("3 polls took %v, under 3 PollWaits", d)
	}
	if got := metric(t, s, "p2phttp_signal_poll_timeouts_total"); got != 3 {
		t.Errorf("poll timeouts = %v", got)
	}
	first := asyncPost(t, s.Addr, postRaw(room, rawOffer(1)))
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 1)
	if r := rawDo(t, s.Addr, postRaw(room, rawOffer(2))); r.Status != 200 {
		t.Fatalf("second peer: %d %q", r.Status, r.Body)
	}
	if r := recv(t, first); r.Status != 200 {
		t.Fatalf("first peer: %d %q", r.Status, r.Body)
	}
}

// TestStalePeerDropped: a peer that stops re-polling leaves the room.
func TestStalePeerDropped(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1, PollWait: 100 * time.Millisecond})
	if r := rawDo(t, s.Addr, postRaw(roomHex(12), rawOffer(1))); r.Status != 202 {
		t.Fatalf("%d %q", r.Status, r.Body)
	}
	waitMetric(t, s, "p2phttp_signal_rooms", 0)
}

// TestDeadWaiterReplaced: a parked peer whose client hung up is not handed
// to the next joiner; the joiner takes its place and meets the one after.
func TestDeadWaiterReplaced(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1})
	room := roomHex(13)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(postRaw(room, rawOffer(1))))
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 1)
	c.Close()
	time.Sleep(50 * time.Millisecond) // let the FIN land
	// Whichever of the next two the server sees first takes the dead peer's
	// place; the other meets it.
	second := asyncPost(t, s.Addr, postRaw(room, rawOffer(2)))
	third := rawDo(t, s.Addr, postRaw(room, rawOffer(3)))
	var a answer
	if third.Status != 200 || json.Unmarshal(third.Body, &a) != nil || a.Peer.PeerID != fmt.Sprintf("%032x", 2) {
		t.Fatalf("third peer: %d %q, want the second peer's offer", third.Status, third.Body)
	}
	if r := recv(t, second); r.Status != 200 || !strings.Contains(string(r.Body), fmt.Sprintf("%032x", 3)) {
		t.Fatalf("second peer: %d %q, want the third peer's offer", r.Status, r.Body)
	}
}

// TestDuplicatePoll: a second concurrent poll of the same peer supersedes the
// first, which gets 202.
func TestDuplicatePoll(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1})
	room := roomHex(14)
	first := asyncPost(t, s.Addr, postRaw(room, rawOffer(1)))
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 1)
	second := asyncPost(t, s.Addr, postRaw(room, rawOffer(1)))
	if r := recv(t, first); r.Status != 202 {
		t.Fatalf("superseded poll: %d %q", r.Status, r.Body)
	}
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 1)
	if r := rawDo(t, s.Addr, postRaw(room, rawOffer(2))); r.Status != 200 {
		t.Fatalf("%d %q", r.Status, r.Body)
	}
	if r := recv(t, second); r.Status != 200 {
		t.Fatalf("%d %q", r.Status, r.Body)
	}
}

func TestExpiry(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1, RoomTTL: 200 * time.Millisecond})
	start := time.Now()
	r := rawDo(t, s.Addr, postRaw(roomHex(15), rawOffer(1)))
	if r.Status != 410 || r.Error != "room expired" {
		t.Fatalf("%d %q", r.Status, r.Body)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("expired after %v", d)
	}
	if got := metric(t, s, "p2phttp_signal_rooms_expired_total"); got != 1 {
		t.Errorf("expired = %v", got)
	}
	waitMetric(t, s, "p2phttp_signal_rooms", 0)
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 0)
}

func TestRateLimit(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: 0.5, RateBurst: 2})
	for i := 0; i < 2; i++ { // the burst: bad room IDs still take a token
		if r := rawDo(t, s.Addr, postRaw("x", "")); r.Status != 400 {
			t.Fatalf("request %d: %d %q", i, r.Status, r.Body)
		}
	}
	r := rawDo(t, s.Addr, postRaw("x", ""))
	if r.Status != 429 || !strings.Contains(r.Error, "rate limit") {
		t.Fatalf("%d %q", r.Status, r.Body)
	}
	if ra := r.Header.Get("Retry-After"); ra != "2" && ra != "3" {
		t.Errorf("Retry-After %q, want 2 s (one token at 0.5/s)", ra)
	}
	// Health checks and metrics are not limited.
	if r := rawDo(t, s.Addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); r.Status != 200 {
		t.Fatalf("healthz: %d", r.Status)
	}
	if got := metric(t, s, `p2phttp_signal_refusals_total{reason="rate_limited"}`); got != 1 {
		t.Errorf("rate_limited = %v", got)
	}
}

func TestCapacityLimits(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1, MaxRooms: 1, MaxWaiting: 1})
	asyncPost(t, s.Addr, postRaw(roomHex(1), rawOffer(1)))
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 1)
	r := rawDo(t, s.Addr, postRaw(roomHex(2), rawOffer(2)))
	if r.Status != 503 || !strings.Contains(r.Error, "too many rooms") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("max rooms: %d %q %v", r.Status, r.Body, r.Header)
	}
	s2 := startServer(t, ServerConfig{RatePerIP: -1, MaxWaiting: 1})
	asyncPost(t, s2.Addr, postRaw(roomHex(1), rawOffer(1)))
	waitMetric(t, s2, "p2phttp_signal_waiting_peers", 1)
	r = rawDo(t, s2.Addr, postRaw(roomHex(2), rawOffer(2)))
	if r.Status != 503 || !strings.Contains(r.Error, "too many waiting peers") {
		t.Fatalf("max waiting: %d %q", r.Status, r.Body)
	}
	waitMetric(t, s2, "p2phttp_signal_rooms", 1) // the refused peer's room is gone
}

// TestShutdownWakesWaiters: ending Serve's context answers parked polls
// (hijacked and in-handler) with a retryable 503, and Serve returns nil.
func TestShutdownWakesWaiters(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1})
	parked := asyncPost(t, s.Addr, postRaw(roomHex(1), rawOffer(1)))
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 1)
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	r := recv(t, parked)
	if r.Status != 503 || r.Header.Get("Retry-After") != "1" || !strings.Contains(r.Error, "shutting down") {
		t.Fatalf("%d %q %v", r.Status, r.Body, r.Header)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if _, err := net.Dial("tcp", s.Addr); err == nil {
		t.Error("still accepting after shutdown")
	}
}

// noHijack hides http.Hijacker, as middleware and HTTP/2 do.
type noHijack struct{ http.ResponseWriter }

func TestInHandlerWaiting(t *testing.T) {
	srv := NewServer(ServerConfig{RatePerIP: -1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(noHijack{w}, r)
	}), ReadTimeout: 100 * time.Millisecond}
	hs.RegisterOnShutdown(func() { srv.Close() })
	go hs.Serve(l)
	defer hs.Close()
	ts := &testServer{Server: srv, Addr: l.Addr().String()}

	// A waiter whose client hangs up leaves the room.
	c, err := net.Dial("tcp", ts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(postRaw(roomHex(1), rawOffer(1))))
	waitMetric(t, ts, "p2phttp_signal_waiting_peers", 1)
	c.Close()
	waitMetric(t, ts, "p2phttp_signal_rooms", 0)

	// A meeting works, and outlives the server's ReadTimeout.
	first := asyncPost(t, ts.Addr, postRaw(roomHex(2), rawOffer(1)))
	waitMetric(t, ts, "p2phttp_signal_waiting_peers", 1)
	time.Sleep(300 * time.Millisecond)
	if r := rawDo(t, ts.Addr, postRaw(roomHex(2), rawOffer(2))); r.Status != 200 {
		t.Fatalf("%d %q", r.Status, r.Body)
	}
	r := recv(t, first)
	if r.Status != 200 || r.Close {
		t.Fatalf("in-handler answer: %d %q %v", r.Status, r.Body, r.Header)
	}

	// Close wakes in-handler waiters too.
	parked := asyncPost(t, ts.Addr, postRaw(roomHex(3), rawOffer(1)))
	waitMetric(t, ts, "p2phttp_signal_waiting_peers", 1)
	srv.Close()
	if r := recv(t, parked); r.Status != 503 {
		t.Fatalf("%d %q", r.Status, r.Body)
	}
}

func TestTwoRoomsParallelRaw(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1})
	a := asyncPost(t, s.Addr, postRaw(roomHex(1), rawOffer(1)))
	b := asyncPost(t, s.Addr, postRaw(roomHex(2), rawOffer(3)))
	waitMetric(t, s, "p2phttp_signal_waiting_peers", 2)
	c := asyncPost(t, s.Addr, postRaw(roomHex(2), rawOffer(4)))
	d := asyncPost(t, s.Addr, postRaw(roomHex(1), rawOffer(2)))
	want := map[<-chan rawResponse]int{a: 2, b: 4, c: 3, d: 1}
	for ch, peer := range want {
		r := recv(t, ch)
		var ans answer
		if r.Status != 200 || json.Unmarshal(r.Body, &ans) != nil || ans.Peer.PeerID != fmt.Sprintf("%032x", peer) {
			t.Errorf("want peer %d, got %d %q", peer, r.Status, r.Body)
		}
	}
}

// TestSlowClientsCut: a client that trickles its headers, or its body, or
// idles on a keep-alive connection, is disconnected after the configured
// timeout (slowloris).
func TestSlowClientsCut(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1, ReadHeaderTimeout: 200 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	for name, raw := range map[string]string{
		"headers": "POST /v1/rooms/" + roomHex(1) + " HTTP/1.1\r\nHost: x\r\n",
		"body":    "POST /v1/rooms/" + roomHex(1) + " HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
		"idle":    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte(raw))
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatal("server kept the slow connection open")
					}
					break
				}
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("cut after %v", d)
			}
		})
	}
	if got := metric(t, s, "p2phttp_signal_rooms"); got != 0 {
		t.Errorf("rooms = %v", got)
	}
}

func TestIPLimiterKeys(t *testing.T) {
	l := newIPLimiter(0.001, 1)
	now := time.Now()
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"192.0.2.1", true},
		{"192.0.2.1", false},
		{"::ffff:192.0.2.1", false}, // the same IPv4 client
		{"192.0.2.2", true},
		{"2001:db8:1:2::1", true},
		{"2001:db8:1:2:ffff::9", false}, // same /64
		{"2001:db8:1:3::1", true},
	} {
		if ok, _ := l.allow(netip.MustParseAddr(tc.ip), now); ok != tc.want {
			t.Errorf("allow(%s) = %v, want %v", tc.ip, ok, tc.want)
		}
	}
	if newIPLimiter(-1, 1) != nil {
		t.Error("negative rate should disable the limiter")
	}
}
