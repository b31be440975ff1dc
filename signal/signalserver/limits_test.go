package signalserver

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/signal"
)

// postFrom posts as client addr behind a trusted proxy (the test's loopback
// connection), so tests can speak for any IPv4 or IPv6 source.
func postFrom(base, from, pattern, arg string, body any) response {
	req, _ := http.NewRequest("POST", base+signal.ExpandPath(pattern, arg), strings.NewReader(string(mustJSON(body))))
	req.Header.Set("X-Forwarded-For", from)
	res, err := testClient.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b, err: err}
}

func asyncPostFrom(base, from, pattern, arg string, body any) <-chan response {
	ch := make(chan response, 1)
	go func() { ch <- postFrom(base, from, pattern, arg, body) }()
	return ch
}

func proxiedConfig() Config {
	cfg := testConfig()
	cfg.PollWait = 10 * time.Second
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	return cfg
}

// TestParkedCaps: one IPv4 address, one IPv6 /64 and one IPv6 /56 each park
// at most their cap of polls; others are not affected; a slot frees when
// its poll ends.
func TestParkedCaps(t *testing.T) {
	cfg := proxiedConfig()
	cfg.MaxParkedPerIP, cfg.MaxParkedPerIPv6Net = 2, 3
	ts := startServer(t, cfg)
	park := func(from string) <-chan response {
		return asyncPostFrom(ts.URL, from, signal.GuestPath, "1", guestReq(signal.NewPeerID()))
	}
	refused := func(from string) {
		t.Helper()
		r := postFrom(ts.URL, from, signal.GuestPath, "1", guestReq(signal.NewPeerID()))
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("poll over the cap from %s: %d %s", from, r.status, r.body)
		}
	}
	park("192.0.2.1")
	park("192.0.2.1")
	waitParked(t, ts.Server, 2)
	refused("192.0.2.1")
	park("192.0.2.2") // another address
	waitParked(t, ts.Server, 3)

	park("2001:db8:0:1::1")
	park("2001:db8:0:1::2") // same /64
	waitParked(t, ts.Server, 5)
	refused("2001:db8:0:1::3")
	park("2001:db8:0:2::1") // another /64 of the same /56: its third poll
	waitParked(t, ts.Server, 6)
	refused("2001:db8:0:3::1") // the /56 is full
	park("2001:db8:1::1")      // another /56
	waitParked(t, ts.Server, 7)
	if got := metric(t, ts.URL, `p2phttp_signal_refusals_total{reason="client_parked"}`); got != 3 {
		t.Errorf("client_parked refusals %v, want 3", got)
	}
}

// TestMaxParked: the server-wide cap gives 503 with Retry-After.
func TestMaxParked(t *testing.T) {
	cfg := proxiedConfig()
	cfg.MaxParked = 2
	ts := startServer(t, cfg)
	for i := range 2 {
		asyncPostFrom(ts.URL, fmt.Sprintf("192.0.2.%d", i+1), signal.GuestPath, "1", guestReq(signal.NewPeerID()))
	}
	waitParked(t, ts.Server, 2)
	r := postFrom(ts.URL, "192.0.2.9", signal.GuestPath, "1", guestReq(signal.NewPeerID()))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("over MaxParked: %d %s", r.status, r.body)
	}
}

// TestRateLimits: per address and per /56, with Retry-After.
func TestRateLimits(t *testing.T) {
	cfg := proxiedConfig()
	cfg.RatePerIP, cfg.RateBurst = 0.1, 3
	cfg.RatePerIPv6Net, cfg.RateBurstIPv6Net = 0.1, 5
	ts := startServer(t, cfg)
	send := func(from string) response {
		return postFrom(ts.URL, from, signal.ReleasePath, "1", signal.ReleaseRequest{PeerID: signal.NewPeerID()})
	}
	for i := range 3 {
		wantStatus(t, fmt.Sprint("request ", i), send("192.0.2.1"), http.StatusOK)
	}
	if r := send("192.0.2.1"); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %s", r.status, r.body)
	}
	wantStatus(t, "another address", send("192.0.2.2"), http.StatusOK)
	for i := range 5 { // five /64s of one /56
		wantStatus(t, fmt.Sprint("v6 request ", i), send(fmt.Sprintf("2001:db8:0:%x::1", i)), http.StatusOK)
	}
	if r := send("2001:db8:0:ff::1"); r.status != http.StatusTooManyRequests {
		t.Fatalf("over the /56 rate: %d %s", r.status, r.body)
	}
}

// TestRoomRate: claims and meetings per client are rate limited.
func TestRoomRate(t *testing.T) {
	cfg := proxiedConfig()
	cfg.PollWait = 100 * time.Millisecond
	cfg.RoomRatePerIP, cfg.RoomBurst = 0.01, 2
	ts := startServer(t, cfg)
	for i := range 2 {
		wantStatus(t, "claim", postFrom(ts.URL, "192.0.2.1", signal.HostPath, fmt.Sprint(i+1), hostReq(signal.NewPeerID())), http.StatusAccepted)
	}
	if r := postFrom(ts.URL, "192.0.2.1", signal.HostPath, "3", hostReq(signal.NewPeerID())); r.status != http.StatusTooManyRequests {
		t.Fatalf("third claim: %d %s", r.status, r.body)
	}
}

// TestClientAddr: X-Forwarded-For counts only behind a trusted proxy.
func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct{ remote, xff, want string }{
		{"192.0.2.1:5", "", "192.0.2.1"},
		{"192.0.2.1:5", "198.51.100.1", "192.0.2.1"}, // not from a proxy: ignored
		{"10.0.0.1:5", "198.51.100.1", "198.51.100.1"},
		{"10.0.0.1:5", "203.0.113.9, 198.51.100.1, 10.0.0.2", "198.51.100.1"}, // right-most untrusted
		{"10.0.0.1:5", "junk", "10.0.0.1"},
		{"[::ffff:192.0.2.7]:5", "", "192.0.2.7"},
	} {
		r, _ := http.NewRequest("POST", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got, ok := clientAddr(r, trusted); !ok || got.String() != tc.want {
			t.Errorf("%s + %q: %v, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

// TestSlotLimiterBounded: the limiter's memory does not grow with the
// number of sources, and one source is still limited.
func TestSlotLimiterBounded(t *testing.T) {
	l := newSlotLimiter(1, 2, 1024)
	now := time.Now()
	for i := range 100_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(clientOf(a).ip, now)
	}
	if len(l.slots) != 1024 {
		t.Fatalf("slots grew to %d", len(l.slots))
	}
	victim := clientOf(netip.MustParseAddr("192.0.2.1")).ip
	allowed := 0
	for range 10 {
		if ok, _ := l.allow(victim, now); ok {
			allowed++
		}
	}
	if allowed > 2 {
		t.Fatalf("one source got %d of 10 at burst 2", allowed)
	}
}

// TestHangUpFreesSlot: a client that closes its parked poll's connection
// gets its slot back at once (an attacker's closed sockets hold nothing).
func TestHangUpFreesSlot(t *testing.T) {
	cfg := testConfig()
	cfg.MaxParkedPerIP, cfg.PollWait = 2, 20*time.Second
	ts := startServer(t, cfg)
	for range 5 {
		var conns []net.Conn
		for range 2 {
			conns = append(conns, rawPost(t, ts.Addr, signal.ExpandPath(signal.GuestPath, "2"), guestReq(signal.NewPeerID())))
		}
		waitParked(t, ts.Server, 2)
		for _, c := range conns {
			c.Close()
		}
		waitParked(t, ts.Server, 0)
	}
}
