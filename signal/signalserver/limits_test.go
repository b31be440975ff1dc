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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		require.Equal(t, http.StatusTooManyRequests, r.status, "poll over the cap from %s: %s", from, r.body)
		require.NotEmpty(t, r.header.Get("Retry-After"), "poll over the cap from %s", from)
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
	assert.Equal(t, 3.0, metric(t, ts.URL, `p2phttp_signal_refusals_total{reason="client_parked"}`), "client_parked refusals")
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
	require.Equal(t, http.StatusServiceUnavailable, r.status, "over MaxParked: %s", r.body)
	require.NotEmpty(t, r.header.Get("Retry-After"), "over MaxParked")
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
	over := send("192.0.2.1")
	require.Equal(t, http.StatusTooManyRequests, over.status, "over the rate: %s", over.body)
	require.NotEmpty(t, over.header.Get("Retry-After"), "over the rate")
	wantStatus(t, "another address", send("192.0.2.2"), http.StatusOK)
	for i := range 5 { // five /64s of one /56
		wantStatus(t, fmt.Sprint("v6 request ", i), send(fmt.Sprintf("2001:db8:0:%x::1", i)), http.StatusOK)
	}
	over = send("2001:db8:0:ff::1")
	require.Equal(t, http.StatusTooManyRequests, over.status, "over the /56 rate: %s", over.body)
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
	third := postFrom(ts.URL, "192.0.2.1", signal.HostPath, "3", hostReq(signal.NewPeerID()))
	require.Equal(t, http.StatusTooManyRequests, third.status, "third claim: %s", third.body)
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
		got, ok := clientAddr(r, trusted)
		if assert.True(t, ok, "%s + %q", tc.remote, tc.xff) {
			assert.Equal(t, tc.want, got.String(), "%s + %q", tc.remote, tc.xff)
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
	require.Equal(t, 1024, len(l.slots), "slots grew")
	victim := clientOf(netip.MustParseAddr("192.0.2.1")).ip
	allowed := 0
	for range 10 {
		if ok, _ := l.allow(victim, now); ok {
			allowed++
		}
	}
	require.LessOrEqual(t, allowed, 2, "one source's allowed requests of 10 at burst 2")
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
