package rendezvous_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
)

// countingHandler counts the log records whose message contains want.
type countingHandler struct {
	want string
	n    *atomic.Int32
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.want) {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// With relay credentials that last 2 s, both peers renew theirs again and again while their session lives (the
// guest with its renewal token, the host with its polls), each renewal replaces the allocation, the replaced ones
// are released (the relay never holds more than two per peer), and the session still carries requests.
func TestRelayCredentialsRenewed(t *testing.T) {
	cfg := rendezvoustest.Unlimited()
	cfg.RelayCredentialTTL = 2 * time.Second
	cfg.PollWait = 500 * time.Millisecond
	srv, err := rendezvoustest.NewServerWithRelay(cfg)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	var hostRenewals, guestRenewals atomic.Int32
	hostCfg, guestCfg := srv.Config(""), srv.Config("")
	hostCfg.Logger = slog.New(countingHandler{"relay credentials renewed", &hostRenewals})
	guestCfg.Logger = slog.New(countingHandler{"relay credentials renewed", &guestRenewals})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host, a, b, err := rendezvoustest.Pair(ctx, hostCfg, guestCfg)
	require.NoError(t, err)
	defer host.Close()
	defer b.Close()
	require.True(t, b.Report().Relay.IsValid(), "the guest has no relay")

	deadline := time.Now().Add(15 * time.Second)
	for guestRenewals.Load() < 3 || hostRenewals.Load() < 2 {
		require.False(t, time.Now().After(deadline), "renewals after 15 s: guest %d, host %d", guestRenewals.Load(), hostRenewals.Load())
		assert.LessOrEqual(t, srv.Relay.Allocations(), 4, "replaced allocations are released")
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, b.Err())
	got := roundTrip(t, b.Stream(), a.Stream(), "host", "/renewed", []byte("still here"))
	assert.Contains(t, got, "host served POST /renewed")
}
