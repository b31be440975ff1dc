package signal_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

var relayURLs = []string{"turn:127.0.0.1:3480?transport=udp", "turn:127.0.0.1:3480?transport=tcp"}

const relaySecret = "relay test secret"

// startSignal runs a real signalling server in-process, with a relay when urls are given.
func startSignal(t *testing.T, urls []string) string {
	t.Helper()
	srv := signalserver.New(signalserver.Config{RatePerIP: -1, RoomRatePerIP: 1e6, RoomBurst: 1e6, PollWait: time.Second,
		RelayURLs: urls, RelaySecret: []byte(relaySecret)})
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return ts.URL
}

// checkREST checks that r holds TURN REST credentials of the test secret that are still valid.
func checkREST(t *testing.T, r *signal.RelayInfo) {
	t.Helper()
	require.NotNil(t, r)
	assert.Equal(t, relayURLs, r.URLs)
	mac := hmac.New(sha1.New, []byte(relaySecret))
	mac.Write([]byte(r.Username))
	assert.Equal(t, base64.StdEncoding.EncodeToString(mac.Sum(nil)), r.Password, "password is the HMAC of the username")
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), r.Expires, time.Minute)
	assert.True(t, strings.HasPrefix(r.Username, timeString(r.Expires)+":"), "username %q starts with the expiry", r.Username)
}

func timeString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// The host learns relay credentials from its polls (Relay, OnRelay); the guest's Gather gets the guest's own once
// the server put it in a meeting, and the relay candidate it returns reaches the host, sealed.
func TestRelayCredentialsReachHostAndGuest(t *testing.T) {
	url := startSignal(t, relayURLs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var seen []*signal.RelayInfo
	gotRelay := make(chan struct{}, 16)
	h := startHost(t, url, signal.HostConfig{OnRelay: func(r *signal.RelayInfo) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		gotRelay <- struct{}{}
	}})
	select {
	case <-gotRelay:
	case <-ctx.Done():
		t.Fatal("OnRelay was not called")
	}
	hostRelay := h.Relay()
	checkREST(t, hostRelay)
	mu.Lock()
	assert.Same(t, seen[len(seen)-1], hostRelay)
	mu.Unlock()

	relayCand := signal.Candidate{Kind: signal.KindRelay, Addr: netip.MustParseAddrPort("127.0.0.1:50001")}
	var guestRelay *signal.RelayInfo
	met := acceptAsync(ctx, h)
	m, err := signal.NewClient(url).JoinWith(ctx, h.Code(), signal.JoinConfig{
		Candidates: guestCands(),
		Gather: func(ctx context.Context, r *signal.RelayInfo) ([]signal.Candidate, error) {
			guestRelay = r
			return []signal.Candidate{relayCand}, nil
		},
	})
	require.NoError(t, err)
	assert.Equal(t, hostCands(), m.Peer)
	hm := <-met
	require.NotNil(t, hm)
	assert.Equal(t, append(guestCands(), relayCand), hm.Peer, "the host got the guest's gathered relay candidate")
	checkREST(t, guestRelay)
	hostUser := hostRelay.Username[strings.IndexByte(hostRelay.Username, ':')+1:]
	guestUser := guestRelay.Username[strings.IndexByte(guestRelay.Username, ':')+1:]
	assert.NotEqual(t, hostUser, guestUser, "each peer has a user of its own")

	// A later poll of the host brings fresh credentials for the same user.
	deadline := time.After(10 * time.Second)
	for h.Relay() == hostRelay {
		select {
		case <-gotRelay:
		case <-deadline:
			t.Fatal("no fresh relay credentials after the host's next poll")
		}
	}
	next := h.Relay()
	assert.Equal(t, hostUser, next.Username[strings.IndexByte(next.Username, ':')+1:])
}

// Without a relay, peers get no credentials: Relay is nil and Gather is called with nil.
func TestNoRelayNoCredentials(t *testing.T) {
	url := startSignal(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := startHost(t, url, signal.HostConfig{OnRelay: func(*signal.RelayInfo) { t.Error("OnRelay called without a relay") }})
	met := acceptAsync(ctx, h)
	called := false
	_, err := signal.NewClient(url).JoinWith(ctx, h.Code(), signal.JoinConfig{
		Gather: func(ctx context.Context, r *signal.RelayInfo) ([]signal.Candidate, error) {
			called = true
			assert.Nil(t, r)
			return guestCands(), nil // Candidates may be empty when Gather finds them all
		},
	})
	require.NoError(t, err)
	assert.True(t, called)
	require.NotNil(t, <-met)
	assert.Nil(t, h.Relay())
}

// A Gather that fails ends the Join with its error; one that returns no usable candidate, with ErrBadCandidates.
func TestJoinGatherErrors(t *testing.T) {
	url := startSignal(t, relayURLs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := startHost(t, url, signal.HostConfig{})
	go func() {
		for {
			if _, err := h.Accept(ctx); err != nil {
				return
			}
		}
	}()
	boom := errors.New("no allocation")
	_, err := signal.NewClient(url).JoinWith(ctx, h.Code(), signal.JoinConfig{Candidates: guestCands(),
		Gather: func(context.Context, *signal.RelayInfo) ([]signal.Candidate, error) { return nil, boom }})
	assert.ErrorIs(t, err, boom)
	_, err = signal.NewClient(url).JoinWith(ctx, h.Code(), signal.JoinConfig{
		Gather: func(context.Context, *signal.RelayInfo) ([]signal.Candidate, error) { return nil, nil }})
	assert.ErrorIs(t, err, signal.ErrBadCandidates)
}
