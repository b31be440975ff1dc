package signalserver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
)

// A guest renews its relay credentials through any instance of the deployment, after its meeting closed, for the
// same TURN user; the fresh ones allocate on the relay. Altered tokens, those of another deployment and those past
// their limit are refused, and so is every renewal on a server without a relay.
func TestRelayRenewal(t *testing.T) {
	secret := []byte("one deployment's secret")
	urls := startRelayFor(t, secret)
	cfgA, cfgB := testConfig(), testConfig()
	cfgA.RelayURLs, cfgA.RelaySecret, cfgA.RelayCredentialTTL = urls, secret, 3*time.Second
	cfgB.RelayURLs, cfgB.RelaySecret, cfgB.RelayCredentialTTL = urls, secret, time.Minute
	cfgB.RelayRenewFor = 30 * time.Second
	a, b := startServer(t, cfgA), startServer(t, cfgB)

	host, guest := signal.NewPeerID(), signal.NewPeerID()
	hostPoll := asyncPost(a.URL, signal.HostPath, "9", hostReq(host))
	waitParked(t, a.Server, 1)
	r := post(a.URL, signal.GuestPath, "9", guestReq(guest))
	wantStatus(t, "guest", r, http.StatusOK)
	var g signal.GuestResponse
	r.decode(t, &g)
	require.NotNil(t, g.Relay)
	require.NotEmpty(t, g.Relay.Renewal, "a guest's credentials carry a renewal token")
	assert.NotContains(t, g.Relay.Renewal, guest, "the token does not carry the peer ID")
	hr := recvFrom(t, hostPoll, "host poll")
	wantStatus(t, "host", hr, http.StatusOK)
	var h signal.HostResponse
	hr.decode(t, &h)
	require.NotNil(t, h.Relay)
	assert.Empty(t, h.Relay.Renewal, "a host renews with its polls")
	wantStatus(t, "close", post(a.URL, signal.ClosePath, g.Meeting, signal.CloseRequest{PeerID: guest}), http.StatusOK)

	ctx := context.Background()
	_, err := signal.NewClient(b.URL).RenewRelay(ctx, h.Relay)
	require.ErrorIs(t, err, signal.ErrNoRenewal)

	fresh, err := signal.NewClient(b.URL).RenewRelay(ctx, g.Relay)
	require.NoError(t, err, "the other instance renews the first one's token, after the meeting closed")
	user := func(name string) string { return name[strings.IndexByte(name, ':')+1:] }
	assert.Equal(t, user(g.Relay.Username), user(fresh.Username), "renewed credentials are the same peer's")
	assert.Equal(t, g.Relay.Renewal, fresh.Renewal)
	assert.True(t, fresh.Expires.After(g.Relay.Expires), "B's credentials last longer: %v, %v", fresh.Expires, g.Relay.Expires)
	assert.False(t, fresh.Expires.After(time.Now().Add(time.Minute+time.Second)))
	require.NoError(t, allocate(t, relayAddr(urls[0]), fresh))

	refused := func(what, token string, status int, msg string) {
		t.Helper()
		_, err := signal.NewClient(a.URL).RenewRelay(ctx, &signal.RelayInfo{Renewal: token})
		var se *signal.Error
		require.True(t, errors.As(err, &se), "%s: %v", what, err)
		assert.Equal(t, status, se.Status, what)
		assert.Equal(t, msg, se.Message, what)
	}
	tampered := []byte(g.Relay.Renewal)
	tampered[0] ^= 1 // a later limit
	refused("altered", string(tampered), http.StatusForbidden, signal.MsgBadRenewal)
	refused("garbage", "x", http.StatusForbidden, signal.MsgBadRenewal)
	foreign := startServer(t, Config{RelayURLs: urls, RelaySecret: []byte("another deployment")})
	refused("another deployment's", foreign.renewalToken(user(g.Relay.Username), time.Now().Add(time.Hour).Unix()),
		http.StatusForbidden, signal.MsgBadRenewal)
	past := a.renewalToken(user(g.Relay.Username), time.Now().Add(-time.Second).Unix())
	refused("past its limit", past, http.StatusGone, signal.MsgRenewalEnded)

	// Near the limit, the credentials end with it.
	soon := a.renewalToken(user(g.Relay.Username), time.Now().Add(2*time.Second).Unix())
	capped, err := signal.NewClient(a.URL).RenewRelay(ctx, &signal.RelayInfo{Renewal: soon})
	require.NoError(t, err)
	assert.False(t, capped.Expires.After(time.Now().Add(2*time.Second)), "credentials outlive the renewal limit: %v", capped.Expires)

	off := startServer(t, testConfig())
	_, err = signal.NewClient(off.URL).RenewRelay(ctx, g.Relay)
	var se *signal.Error
	require.True(t, errors.As(err, &se), "%v", err)
	assert.Equal(t, http.StatusNotFound, se.Status)
	assert.Equal(t, signal.MsgNoRelay, se.Message)
}
