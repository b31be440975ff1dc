package signal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

// exchange is one request the proxy relayed and its answer, as the server saw them.
type exchange struct {
	path     string
	req      []byte
	status   int
	resp     []byte
	messages [][]byte // the meeting message bodies inside req (send) or resp (recv), decoded
	sender   string   // the peer ID of a send
	seq      int      // the seq of a send
}

// tamperProxy is a signalling server that records and may alter what it relays: a reverse proxy in front of the
// real server, standing for an operator who logs everything and rewrites what it likes.
type tamperProxy struct {
	URL string

	mu        sync.Mutex
	log       []exchange
	hostPeer  string                                      // the peer ID of the last host poll seen
	alterSend func(meeting string, s *signal.SendRequest) // may change a message before the server stores it
}

// isHost reports whether peerID is the host's.
func (p *tamperProxy) isHost(peerID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return peerID == p.hostPeer
}

func newTamperProxy(t *testing.T) *tamperProxy {
	t.Helper()
	real := signalserver.New(signalserver.Config{RatePerIP: -1, RoomRatePerIP: 1e6, RoomBurst: 1e6, PollWait: 2 * time.Second})
	backend := httptest.NewServer(real)
	t.Cleanup(func() { backend.Close(); real.Close() })
	target, _ := url.Parse(backend.URL)
	p := &tamperProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: p,
		ErrorLog:  log.New(io.Discard, "", 0), // hung-up long-polls are normal here
	}
	front := httptest.NewServer(rp)
	t.Cleanup(front.Close)
	p.URL = front.URL
	return p
}

// RoundTrip relays one request, recording it and its answer and applying alterSend.
func (p *tamperProxy) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body.Close()
	ex := exchange{path: r.URL.Path}
	if strings.HasSuffix(r.URL.Path, "/host") {
		var h signal.HostRequest
		if json.Unmarshal(body, &h) == nil {
			p.mu.Lock()
			p.hostPeer = h.PeerID
			p.mu.Unlock()
		}
	}
	if strings.HasSuffix(r.URL.Path, "/send") {
		var s signal.SendRequest
		if json.Unmarshal(body, &s) == nil {
			p.mu.Lock()
			alter := p.alterSend
			p.mu.Unlock()
			if alter != nil {
				alter(meetingOf(r.URL.Path), &s)
				body, _ = json.Marshal(s)
			}
			ex.messages = append(ex.messages, s.Body)
			ex.sender, ex.seq = s.PeerID, s.Seq
		}
	}
	ex.req = body
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	res, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(resp))
	ex.status, ex.resp = res.StatusCode, resp
	if strings.HasSuffix(r.URL.Path, "/recv") {
		var rr signal.RecvResponse
		if json.Unmarshal(resp, &rr) == nil {
			for _, m := range rr.Messages {
				ex.messages = append(ex.messages, m.Body)
			}
		}
	}
	p.mu.Lock()
	p.log = append(p.log, ex)
	p.mu.Unlock()
	return res, nil
}

func meetingOf(path string) string {
	parts := strings.Split(path, "/") // /v2/meetings/{id}/send
	if len(parts) >= 4 {
		return parts[3]
	}
	return ""
}

// recorded returns everything the server saw and said, raw and with message bodies decoded.
func (p *tamperProxy) recorded() (all []byte, log []exchange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ex := range p.log {
		all = append(all, ex.path...)
		all = append(all, ex.req...)
		all = append(all, ex.resp...)
		for _, m := range ex.messages {
			all = append(all, m...)
		}
	}
	return all, append([]exchange(nil), p.log...)
}

// sends lists the messages the server was asked to store for meeting id, in order.
func (p *tamperProxy) sends(id string) [][]byte {
	_, log := p.recorded()
	var out [][]byte
	for _, ex := range log {
		if strings.HasSuffix(ex.path, "/send") && meetingOf(ex.path) == id {
			out = append(out, ex.messages...)
		}
	}
	return out
}

// guestFirst is the guest's first message in meeting id, as the server was asked to store it. (The log is in the
// order the answers came back, so the host's answer may come first.)
func (p *tamperProxy) guestFirst(t *testing.T, id string) []byte {
	t.Helper()
	_, log := p.recorded()
	for _, ex := range log {
		if strings.HasSuffix(ex.path, "/send") && meetingOf(ex.path) == id && ex.seq == 0 && len(ex.messages) == 1 && !p.isHost(ex.sender) {
			return ex.messages[0]
		}
	}
	t.Fatalf("no first message of the guest in meeting %s", id)
	return nil
}

var (
	hostAddr  = netip.MustParseAddrPort("127.0.0.1:41001")
	guestAddr = netip.MustParseAddrPort("127.0.0.1:42002")
)

func hostCands() []signal.Candidate {
	return []signal.Candidate{{Kind: signal.KindHost, Addr: hostAddr}}
}

func guestCands() []signal.Candidate {
	return []signal.Candidate{{Kind: signal.KindSrflx, Addr: guestAddr}}
}

// startHost hosts a picked code through url; the test's end closes it.
func startHost(t *testing.T, url string, cfg signal.HostConfig) *signal.Host {
	t.Helper()
	if cfg.Candidates == nil {
		cfg.Candidates = hostCands()
	}
	h, err := signal.NewClient(url).Host(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

// acceptAsync returns the host's next meeting (or error) on a channel.
func acceptAsync(ctx context.Context, h *signal.Host) <-chan *signal.Meeting {
	ch := make(chan *signal.Meeting, 1)
	go func() {
		m, _ := h.Accept(ctx)
		ch <- m
	}()
	return ch
}

// A server that relays honestly but records everything learns the nameplate and nothing else: not the words, not
// a candidate address, and no value that stays the same from one meeting of the code to the next.
func TestRecordingServerLearnsOnlyTheNameplate(t *testing.T) {
	p := newTamperProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Words long enough that they cannot turn up by chance in base64 or the protocol's JSON (a generated code's
	// four-letter words can: "sage" is in "message").
	picked, err := signal.ParseCode("4711-quixotically-zeppelins")
	require.NoError(t, err)
	h := startHost(t, p.URL, signal.HostConfig{Code: picked})
	code := h.Code()
	var guestMsgs [][]byte
	for range 2 {
		accepted := acceptAsync(ctx, h)
		g, err := signal.NewClient(p.URL).Join(ctx, code, guestCands())
		require.NoError(t, err)
		m := <-accepted
		require.NotNil(t, m)
		assert.Equal(t, g.ID, m.ID)
		assert.Equal(t, hostCands(), g.Peer)
		assert.Equal(t, guestCands(), m.Peer)
		assert.Equal(t, g.Key, m.Key)
		assert.Equal(t, g.Verifier, m.Verifier)
		guestMsgs = append(guestMsgs, p.guestFirst(t, g.ID))
	}

	all, log := p.recorded()
	require.NotEmpty(t, log)
	secret := strings.Split(code.Secret, "-")
	for _, needle := range append(secret, code.Secret, hostAddr.String(), guestAddr.String(), "41001", "42002") {
		assert.NotContains(t, string(all), needle, "the server saw %q", needle)
	}
	for _, port := range []uint16{hostAddr.Port(), guestAddr.Port()} {
		assert.False(t, bytes.Contains(all, []byte{byte(port >> 8), byte(port)}), "a port in binary form")
	}
	// Two meetings with the same code share no PAKE value: nothing in the record is a function of the code alone, so
	// no table can map it back to a code. (Only the protocol's public constants repeat.)
	assert.NotEqual(t, guestMsgs[0], guestMsgs[1])
	x0, x1 := pakeX(t, guestMsgs[0]), pakeX(t, guestMsgs[1])
	assert.NotEqual(t, x0, x1)
}

// pakeX extracts the point the guest sent from its first message.
func pakeX(t *testing.T, msg []byte) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(msg[1:], &m))
	return string(m["Xᵤ"])
}

// A server that alters any message makes the meeting fail; no candidate is ever visible to it. The host confirms
// the guest before it sends its own sealed candidates, so only when those are altered on the way does the host
// accept a guest (rightly: that guest proved it knows the code), which then fails to open them.
func TestTamperingServerCannotCompleteAMeeting(t *testing.T) {
	for _, tc := range []struct {
		name       string
		seq        int
		host       bool
		hostAccept bool
	}{
		{"guest's PAKE message", 0, false, false},
		{"host's PAKE message and confirmation", 0, true, false},
		{"guest's confirmation and sealed candidates", 1, false, false},
		{"host's sealed candidates", 1, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTamperProxy(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			h := startHost(t, p.URL, signal.HostConfig{GuestTimeout: 5 * time.Second})
			p.alterSend = func(meeting string, s *signal.SendRequest) {
				if s.Seq == tc.seq && p.isHost(s.PeerID) == tc.host {
					s.Body = bytes.Clone(s.Body)
					s.Body[len(s.Body)/2] ^= 0x10
				}
			}
			accepted := acceptAsync(ctx, h)
			_, err := signal.NewClient(p.URL).Join(ctx, h.Code(), guestCands())
			require.Error(t, err)
			assert.True(t, errors.Is(err, signal.ErrConfirmFailed) || errors.Is(err, signal.ErrBadMessage) ||
				errors.Is(err, signal.ErrPeerLeft), "guest: %v", err)
			if tc.hostAccept {
				m := <-accepted
				require.NotNil(t, m)
				assert.Equal(t, guestCands(), m.Peer)
			} else {
				select {
				case m := <-accepted:
					t.Fatalf("the host accepted a tampered meeting: %+v", m)
				case <-time.After(500 * time.Millisecond):
				}
			}
			all, _ := p.recorded()
			assert.NotContains(t, string(all), hostAddr.String())
			assert.NotContains(t, string(all), guestAddr.String())
		})
	}
}

// A guest's first message replayed into another meeting (the server stealing a meeting) is dropped unanswered: the
// host sends nothing in that meeting and counts no failure, so even with MaxFailures 1 its code survives.
func TestReplayedGuestMessageIsDropped(t *testing.T) {
	p := newTamperProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	retired := make(chan signal.Code, 1)
	h := startHost(t, p.URL, signal.HostConfig{MaxFailures: 1, GuestTimeout: 3 * time.Second,
		OnNewCode: func(c signal.Code, _ error) { retired <- c }})
	code := h.Code()

	accepted := acceptAsync(ctx, h)
	first, err := signal.NewClient(p.URL).Join(ctx, code, guestCands())
	require.NoError(t, err)
	require.NotNil(t, <-accepted)
	recorded := p.guestFirst(t, first.ID)

	p.alterSend = func(_ string, s *signal.SendRequest) {
		if s.Seq == 0 && !p.isHost(s.PeerID) {
			s.Body = recorded
		}
	}
	_, err = signal.NewClient(p.URL).Join(ctx, code, guestCands())
	assert.ErrorIs(t, err, signal.ErrPeerLeft, "the host dropped the replayed meeting")
	_, log := p.recorded()
	replayed := ""
	for _, ex := range log {
		if strings.HasSuffix(ex.path, "/send") && meetingOf(ex.path) != first.ID {
			replayed = meetingOf(ex.path)
		}
	}
	require.NotEmpty(t, replayed)
	assert.Len(t, p.sends(replayed), 1, "only the replayed message: the host answered nothing")

	p.alterSend = nil
	accepted = acceptAsync(ctx, h)
	_, err = signal.NewClient(p.URL).Join(ctx, code, guestCands())
	require.NoError(t, err, "the code is still good")
	require.NotNil(t, <-accepted)
	select {
	case c := <-retired:
		t.Fatalf("the replay retired the code (new code %s)", c)
	default:
	}
}

// Wrong codes fail cleanly on the guest side and count on the host side: after MaxFailures the code is retired,
// the old nameplate is free and the new code works. A server that relays the guesses learns nothing more.
func TestWrongCodesRetireTheCode(t *testing.T) {
	p := newTamperProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type change struct {
		code   signal.Code
		reason error
	}
	changes := make(chan change, 4)
	h := startHost(t, p.URL, signal.HostConfig{OnNewCode: func(c signal.Code, reason error) { changes <- change{c, reason} }})
	old := h.Code()
	wrong := signal.Code{Nameplate: old.Nameplate, Secret: "not-" + old.Secret}
	for i := range signal.DefaultMaxFailures {
		_, err := signal.NewClient(p.URL).Join(ctx, wrong, guestCands())
		require.ErrorIs(t, err, signal.ErrConfirmFailed, "guess %d", i)
	}
	var c change
	select {
	case c = <-changes:
	case <-ctx.Done():
		t.Fatal("the code was not retired")
	}
	assert.ErrorIs(t, c.reason, signal.ErrCodeRetired)
	assert.Equal(t, c.code, h.Code())
	assert.NotEqual(t, old, c.code)
	assert.Len(t, strings.Split(c.code.Secret, "-"), 3, "the next code is a word longer")

	wctx, wcancel := context.WithTimeout(ctx, time.Second)
	defer wcancel()
	_, err := signal.NewClient(p.URL).Join(wctx, old, guestCands())
	assert.ErrorIs(t, err, context.DeadlineExceeded, "nobody hosts the retired code")

	accepted := acceptAsync(ctx, h)
	_, err = signal.NewClient(p.URL).Join(ctx, c.code, guestCands())
	require.NoError(t, err)
	require.NotNil(t, <-accepted)
	all, _ := p.recorded()
	assert.NotContains(t, string(all), hostAddr.String(), "no wrong guess got the host's candidates")
}

// A meeting the host leaves before answering (it restarted, lost its claim, or could not use the first message)
// costs the guest no guess, so the guest starts another one rather than failing.
func TestGuestJoinsAgainWhenTheHostLeftBeforeAnswering(t *testing.T) {
	p := newTamperProxy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := startHost(t, p.URL, signal.HostConfig{MaxFailures: 1})
	var spoiled atomic.Int32
	p.alterSend = func(_ string, s *signal.SendRequest) {
		if s.Seq == 0 && !p.isHost(s.PeerID) && spoiled.Add(1) == 1 {
			s.Body = []byte{2, '{', '}'} // the host drops this meeting unanswered
		}
	}
	accepted := acceptAsync(ctx, h)
	g, err := signal.NewClient(p.URL).Join(ctx, h.Code(), guestCands())
	require.NoError(t, err)
	m := <-accepted
	require.NotNil(t, m)
	assert.Equal(t, g.ID, m.ID)
	assert.EqualValues(t, 2, spoiled.Load(), "the guest met the host in a second meeting")
}

// The peers agree on a cipher through the server: the host's best that the guest offers too, the same on both
// sides, and never visible to the server.
func TestCipherNegotiation(t *testing.T) {
	const aes, chacha = "aes-256-gcm", "chacha20-poly1305"
	for _, tc := range []struct {
		name        string
		host, guest []string
		want        string // empty: no cipher in common
	}{
		{"both have AES hardware", []string{aes, chacha}, []string{aes, chacha}, aes},
		{"the guest has only ChaCha", []string{aes, chacha}, []string{chacha}, chacha},
		{"the host has only ChaCha", []string{chacha}, []string{aes, chacha}, chacha},
		{"defaults", nil, nil, signal.DefaultCipher},
		{"nothing in common", []string{aes}, []string{chacha}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTamperProxy(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			h := startHost(t, p.URL, signal.HostConfig{Ciphers: tc.host, GuestTimeout: 5 * time.Second})
			accepted := acceptAsync(ctx, h)
			g, err := signal.NewClient(p.URL).JoinWith(ctx, h.Code(), signal.JoinConfig{Candidates: guestCands(), Ciphers: tc.guest})
			if tc.want == "" {
				require.ErrorIs(t, err, signal.ErrNoCommonCipher)
				select {
				case m := <-accepted:
					t.Fatalf("the host accepted a guest with no cipher in common: %+v", m)
				case <-time.After(500 * time.Millisecond):
				}
				return
			}
			require.NoError(t, err)
			m := <-accepted
			require.NotNil(t, m)
			assert.Equal(t, tc.want, g.Cipher, "guest's cipher")
			assert.Equal(t, tc.want, m.Cipher, "host's cipher")
			all, _ := p.recorded()
			for _, name := range []string{aes, chacha, "ciphers"} {
				assert.NotContains(t, string(all), name, "the server saw the offers")
			}
		})
	}
}

// A server that edits the cipher offer inside either side's sealed second message (here the last character of the
// last cipher named, which a stream cipher without a tag would let it change at will) makes the meeting fail: it
// cannot steer the peers to another cipher.
func TestTamperingWithTheCipherOfferFails(t *testing.T) {
	for _, host := range []bool{false, true} {
		t.Run(map[bool]string{false: "guest's offer", true: "host's offer"}[host], func(t *testing.T) {
			p := newTamperProxy(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			offer := []string{"aes-256-gcm", "chacha20-poly1305"}
			h := startHost(t, p.URL, signal.HostConfig{Ciphers: offer, GuestTimeout: 5 * time.Second})
			p.alterSend = func(_ string, s *signal.SendRequest) {
				if s.Seq == 1 && p.isHost(s.PeerID) == host {
					// The sealed JSON ends `...,"chacha20-poly1305"]}`, then the 16-byte tag.
					s.Body = bytes.Clone(s.Body)
					s.Body[len(s.Body)-16-4] ^= '5' ^ '4'
				}
			}
			accepted := acceptAsync(ctx, h)
			_, err := signal.NewClient(p.URL).JoinWith(ctx, h.Code(), signal.JoinConfig{Candidates: guestCands(), Ciphers: offer})
			require.Error(t, err)
			assert.True(t, errors.Is(err, signal.ErrConfirmFailed) || errors.Is(err, signal.ErrPeerLeft), "guest: %v", err)
			if host {
				// The host sent its offer after the guest had proved the code, so it counts the meeting as done.
				require.NotNil(t, <-accepted)
				return
			}
			select {
			case m := <-accepted:
				t.Fatalf("the host accepted a meeting whose offer was altered: %+v", m)
			case <-time.After(500 * time.Millisecond):
			}
		})
	}
}
