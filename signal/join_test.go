package signal_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

// A nameplate that is briefly full ("nameplate full": the host has as many guests as the server allows) makes a
// guest retry rather than fail; one that gives up first says the host was busy. A completed meeting frees its place
// at once; one whose guest went silent holds it until it expires.
func TestGuestRetriesABusyHost(t *testing.T) {
	real := signalserver.New(signalserver.Config{RatePerIP: -1, RoomRatePerIP: 1e6, RoomBurst: 1e6,
		MaxGuestsPerNameplate: 1, MeetingTTL: 3 * time.Second})
	ts := httptest.NewServer(real)
	t.Cleanup(func() { ts.Close(); real.Close() })
	c := (&signal.ClientConfig{BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}).NewClient(ts.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := startHost(t, ts.URL, signal.HostConfig{})
	go func() {
		for {
			if _, err := h.Accept(ctx); err != nil {
				return
			}
		}
	}()
	_, err := c.Join(ctx, h.Code(), guestCands())
	require.NoError(t, err)
	_, err = c.Join(ctx, h.Code(), guestCands())
	require.NoError(t, err, "the first meeting, completed, left the place free")

	// A guest that gets a meeting and says nothing holds the one place. (The host closes the meeting just completed a
	// moment after the guest has its answer, so the place may still be taken for that moment: 409 until then.)
	status := 0
	for deadline := time.Now().Add(5 * time.Second); status != http.StatusOK && time.Now().Before(deadline); {
		body := strings.NewReader(fmt.Sprintf(`{"version":%d,"peer_id":%q}`, signal.Version, signal.NewPeerID()))
		res, err := http.Post(ts.URL+signal.ExpandPath(signal.GuestPath, h.Code().NameplateString()), "application/json", body)
		require.NoError(t, err)
		res.Body.Close()
		status = res.StatusCode
		if status == http.StatusConflict {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		require.Equal(t, http.StatusOK, status)
	}
	require.Equal(t, http.StatusOK, status)

	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = c.Join(short, h.Code(), guestCands())
	assert.ErrorIs(t, err, signal.ErrHostBusy)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	_, err = c.Join(ctx, h.Code(), guestCands())
	assert.NoError(t, err, "a patient guest gets in once the slot is free")
}
