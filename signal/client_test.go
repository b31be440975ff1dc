package signal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type joinResult struct {
	m   *Meeting
	err error
}

func joinAsync(ctx context.Context, c *Client, code string, cs []Candidate) <-chan joinResult {
	ch := make(chan joinResult, 1)
	go func() {
		m, err := c.Join(ctx, code, cs)
		ch <- joinResult{m, err}
	}()
	return ch
}

func checkPair(t *testing.T, a, b *Meeting) {
	t.Helper()
	if a.RoomID != b.RoomID || len(a.RoomID) != 64 {
		t.Errorf("room IDs %q %q", a.RoomID, b.RoomID)
	}
	if a.Peer.PeerID != b.Self.PeerID || b.Peer.PeerID != a.Self.PeerID {
		t.Errorf("peers do not match: %+v / %+v", a, b)
	}
	if a.Dialer == b.Dialer {
		t.Errorf("both Dialer = %v", a.Dialer)
	}
	if len(a.Key) != KeySize || !bytes.Equal(a.Key, b.Key) {
		t.Errorf("keys %x / %x", a.Key, b.Key)
	}
}

func TestJoinMeets(t *testing.T) {
	s := startServer(t, ServerConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := joinAsync(ctx, NewClient(s.URL), testCode, cands(1001, 1002))
	b := joinAsync(ctx, NewClient(s.URL+"/"), "7 Amber  OTTER", cands(2001)) // normalised to the same code
	ra, rb := <-a, <-b
	if ra.err != nil || rb.err != nil {
		t.Fatalf("Join: %v / %v", ra.err, rb.err)
	}
	checkPair(t, ra.m, rb.m)
	if len(ra.m.Peer.Candidates) != 1 || ra.m.Peer.Candidates[0] != cands(2001)[0] {
		t.Errorf("a got candidates %v", ra.m.Peer.Candidates)
	}
	if len(rb.m.Peer.Candidates) != 2 {
		t.Errorf("b got candidates %v", rb.m.Peer.Candidates)
	}
	if want, _ := RoomID(testCode); ra.m.RoomID != want {
		t.Errorf("RoomID %q, want %q", ra.m.RoomID, want)
	}
	waitMetric(t, s, "p2phttp_signal_rooms", 0)

	// The same code hosts a new meeting, with a new session key.
	c := joinAsync(ctx, NewClient(s.URL), testCode, cands(3001))
	d := joinAsync(ctx, NewClient(s.URL), testCode, cands(4001))
	rc, rd := <-c, <-d
	if rc.err != nil || rd.err != nil {
		t.Fatalf("re-join: %v / %v", rc.err, rd.err)
	}
	checkPair(t, rc.m, rd.m)
	if bytes.Equal(rc.m.Key, ra.m.Key) {
		t.Error("second meeting reused the first one's key")
	}
	if got := metric(t, s, "p2phttp_signal_meets_total"); got != 2 {
		t.Errorf("meets = %v", got)
	}
}

func TestJoinTwoRoomsInParallel(t *testing.T) {
	s := startServer(t, ServerConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	codes := []string{testCode, "8-amber-otter"} // TestDerive derives the second too
	var chans [2][2]<-chan joinResult
	for i, code := range codes {
		for j := range 2 {
			chans[i][j] = joinAsync(ctx, NewClient(s.URL), code, cands(uint16(1000*(i+1)+j)))
		}
	}
	var rooms [2]string
	for i := range codes {
		a, b := <-chans[i][0], <-chans[i][1]
		if a.err != nil || b.err != nil {
			t.Fatalf("room %d: %v / %v", i, a.err, b.err)
		}
		checkPair(t, a.m, b.m)
		rooms[i] = a.m.RoomID
	}
	if rooms[0] == rooms[1] {
		t.Error("two codes, one room")
	}
}

// TestJoinLongWait: a peer waits through several poll timeouts.
func TestJoinLongWait(t *testing.T) {
	s := startServer(t, ServerConfig{PollWait: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := joinAsync(ctx, NewClient(s.URL), testCode, cands(1))
	waitMetric(t, s, "p2phttp_signal_poll_timeouts_total", 3)
	b := joinAsync(ctx, NewClient(s.URL), testCode, cands(2))
	ra, rb := <-a, <-b
	if ra.err != nil || rb.err != nil {
		t.Fatalf("%v / %v", ra.err, rb.err)
	}
	checkPair(t, ra.m, rb.m)
}

func TestJoinRoomFull(t *testing.T) {
	s := startServer(t, ServerConfig{RatePerIP: -1, PollWait: time.Second})
	room, _ := RoomID(testCode)
	if r := rawDo(t, s.Addr, postRaw(room, rawOffer(1))); r.Status != 202 {
		t.Fatal(r.Status)
	}
	if r := rawDo(t, s.Addr, postRaw(room, rawOffer(2))); r.Status != 200 {
		t.Fatal(r.Status)
	}
	_, err := NewClient(s.URL).Join(context.Background(), testCode, cands(3))
	var se *Error
	if !errors.Is(err, ErrRoomFull) || !errors.As(err, &se) || se.Status != 409 || errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v", err)
	}
}

func TestJoinTimeout(t *testing.T) {
	s := startServer(t, ServerConfig{PollWait: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	RoomID(testCode) // derive before the clock starts
	_, err := NewClient(s.URL).Join(ctx, testCode, cands(1))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the other peer") {
		t.Fatalf("err = %v", err)
	}

	// Nobody listening: the error says the server could not be reached.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = NewClient("http://"+addr, WithBackoff(10*time.Millisecond, 50*time.Millisecond)).Join(ctx, testCode, cands(1))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "reaching the signalling server") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v", err)
	}
}

// TestJoinRetries: transient refusals (503, 429 with Retry-After, a dropped
// connection) are retried until the real server answers.
func TestJoinRetries(t *testing.T) {
	srv := NewServer(ServerConfig{})
	var n atomic.Int32
	var lastGap atomic.Int64
	var last atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UnixNano()
		if p := last.Swap(now); p != 0 {
			lastGap.Store(now - p)
		}
		switch n.Add(1) {
		case 1:
			writeError(w, 503, "busy", 0)
		case 2:
			panic(http.ErrAbortHandler) // drops the connection
		case 3:
			writeError(w, 429, "slow down", 1)
		default:
			srv.ServeHTTP(w, r)
		}
	}))
	defer front.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opt := WithBackoff(time.Millisecond, 5*time.Millisecond)
	a := joinAsync(ctx, NewClient(front.URL, opt), testCode, cands(1))
	for n.Load() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	if g := time.Duration(lastGap.Load()); g < time.Second {
		t.Errorf("retried %v after 429 with Retry-After: 1", g)
	}
	b := joinAsync(ctx, NewClient(front.URL, opt), testCode, cands(2))
	ra, rb := <-a, <-b
	if ra.err != nil || rb.err != nil {
		t.Fatalf("%v / %v", ra.err, rb.err)
	}
	checkPair(t, ra.m, rb.m)
}

// TestJoinRejoinsExpiredRoom: when the room expires under a waiting peer, Join
// opens it again and still meets.
func TestJoinRejoinsExpiredRoom(t *testing.T) {
	s := startServer(t, ServerConfig{RoomTTL: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := joinAsync(ctx, NewClient(s.URL), testCode, cands(1))
	waitMetric(t, s, "p2phttp_signal_rooms_expired_total", 2)
	b := joinAsync(ctx, NewClient(s.URL), testCode, cands(2))
	ra, rb := <-a, <-b
	if ra.err != nil || rb.err != nil {
		t.Fatalf("%v / %v", ra.err, rb.err)
	}
	checkPair(t, ra.m, rb.m)
}

// evilServer answers every join at once with what tamper makes of the
// client's own offer.
func evilServer(t *testing.T, tamper func(*Offer)) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var o Offer
		json.Unmarshal(body, &o)
		tamper(&o)
		json.NewEncoder(w).Encode(answer{Room: strings.TrimPrefix(r.URL.Path, "/v1/rooms/"), Peer: o})
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestJoinDetectsTampering(t *testing.T) {
	ctx := context.Background()
	flip := func(o *Offer) { o.PeerID = strings.Repeat("0", 32) }
	tests := []struct {
		name   string
		tamper func(*Offer)
		want   error
	}{
		{"changed candidate", func(o *Offer) { flip(o); o.Candidates[0].Addr = cands(6666)[0].Addr }, ErrTampered},
		{"added candidate", func(o *Offer) { flip(o); o.Candidates = append(o.Candidates, cands(6666)...) }, ErrTampered},
		{"changed peer id", flip, ErrTampered},
		{"reflected own offer", func(*Offer) {}, ErrBadOffer},
		{"malformed offer", func(o *Offer) { flip(o); o.MAC = nil }, ErrBadOffer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(evilServer(t, tt.tamper)).Join(ctx, testCode, cands(1))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// An offer moved from another room (code) fails too.
	other, _ := derive("8-amber-otter")
	_, err := NewClient(evilServer(t, func(o *Offer) {
		flip(o)
		o.MAC = offerMAC(other.macKey, other.roomID, o)
	})).Join(ctx, testCode, cands(1))
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("err = %v", err)
	}
}

func TestJoinBadInput(t *testing.T) {
	ctx := context.Background()
	if _, err := NewClient("ftp://x").Join(ctx, testCode, cands(1)); err == nil || !strings.Contains(err.Error(), "want http://") {
		t.Errorf("bad URL: %v", err)
	}
	c := NewClient("http://127.0.0.1:1")
	if _, err := c.Join(ctx, " - _ ", cands(1)); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("empty code: %v", err)
	}
	if _, err := c.Join(ctx, strings.Repeat("a", 300), cands(1)); !errors.Is(err, ErrInvalidCode) {
		t.Errorf("long code: %v", err)
	}
	if _, err := c.Join(ctx, testCode, nil); !errors.Is(err, ErrBadOffer) {
		t.Errorf("no candidates: %v", err)
	}
	if _, err := c.Join(ctx, testCode, []Candidate{{Kind: "relay", Addr: cands(1)[0].Addr}}); !errors.Is(err, ErrBadOffer) {
		t.Errorf("bad kind: %v", err)
	}
	// A 400 from the server is ErrRejected with the server's message.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 400, "unsupported protocol version 1", 0)
	}))
	defer front.Close()
	_, err := NewClient(front.URL).Join(ctx, testCode, cands(1))
	var se *Error
	if !errors.Is(err, ErrRejected) || !errors.As(err, &se) || se.Message != "unsupported protocol version 1" {
		t.Errorf("400: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	for attempt, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 20 {
			d := backoff(100*time.Millisecond, time.Second, attempt, 0)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %v not in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	if d := backoff(time.Millisecond, time.Second, 0, 3*time.Second); d != 3*time.Second {
		t.Errorf("Retry-After ignored: %v", d)
	}
	for in, want := range map[string]time.Duration{"": 0, "2": 2 * time.Second, "-1": 0, "99999999": time.Hour, "soon": 0} {
		if got := parseRetryAfter(in); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
