package signalserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
)

// A closed meeting frees its guest's place at the nameplate at once, whichever side closed it: with one place, a
// second guest gets in as soon as the first meeting is closed, not when it expires.
func TestClosedMeetingFreesGuestSlot(t *testing.T) {
	cfg := testConfig()
	cfg.MaxGuestsPerNameplate = 1
	cfg.MeetingTTL = time.Minute
	s := startServer(t, cfg)
	host := signal.NewPeerID()
	for i, closer := range []string{"guest", "host"} {
		guest := signal.NewPeerID()
		id := meet(t, s.URL, s.URL, "5", host, guest)
		r := post(s.URL, signal.GuestPath, "5", guestReq(signal.NewPeerID()))
		wantStatus(t, "another guest while the meeting is open", r, http.StatusConflict)
		assert.Equal(t, signal.MsgNameplateFull, r.errorMsg(t))
		who := guest
		if closer == "host" {
			who = host
		}
		wantStatus(t, "close by the "+closer, post(s.URL, signal.ClosePath, id, signal.CloseRequest{PeerID: who}), http.StatusOK)
		// The place is free: the next meeting (made by meet, with a fresh guest) opens at once.
		if i == 1 {
			next := meet(t, s.URL, s.URL, "5", host, signal.NewPeerID())
			assert.NotEqual(t, id, next)
		}
	}
}

// A busy host spends several requests per guest from one address; with the default limits, 20 guests from that
// same address (20 parallel `get`s against one `serve` on one machine) all meet it through the real server.
func TestTwentyGuestsOneHostDefaultLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about half a minute: the default room rate admits 10 new meetings at once, then one per 2 s")
	}
	srv := New(Config{})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	// Without the fixes, guests beyond the nameplate's 16 places waited for the first meetings to expire (2 min).
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cands := []signal.Candidate{{Kind: signal.KindHost, Addr: netip.MustParseAddrPort("192.0.2.1:4000")}}
	h, err := signal.NewClient(ts.URL).Host(ctx, signal.HostConfig{Candidates: cands})
	require.NoError(t, err)
	defer h.Close()
	const guests = 20
	hostMet := make(chan error, guests)
	go func() {
		for range guests {
			_, err := h.Accept(ctx)
			hostMet <- err
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, guests)
	for i := range guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = signal.NewClient(ts.URL).Join(ctx, h.Code(), cands)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "guest %d", i)
	}
	for range guests {
		assert.NoError(t, <-hostMet)
	}
}
