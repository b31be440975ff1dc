package signalserver

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRedisKeysExpire: every key the server writes carries a TTL no longer
// than the records' lifetimes, so nothing outlives its use.
func TestRedisKeysExpire(t *testing.T) {
	rs := startRedis(t)
	cfg := testConfig()
	cfg.Store = rs.store(t)
	ts := startServer(t, cfg)
	host, guest := signal.NewPeerID(), signal.NewPeerID()
	m := meet(t, ts.URL, ts.URL, "17", host, guest)
	wantStatus(t, "send", post(ts.URL, signal.SendPath, m, signal.SendRequest{PeerID: guest, Body: []byte("x")}), http.StatusOK)
	wantStatus(t, "release", post(ts.URL, signal.ReleasePath, "17", signal.ReleaseRequest{PeerID: host}), http.StatusOK)

	opt, _ := redis.ParseURL(rs.URL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 2, "the nameplate (remembering the ended claim) and the meeting")
	longest := signal.DefaultMeetingTTL + cfg.PollWait + cfg.Grace + time.Minute
	for _, k := range keys {
		ttl, err := rdb.TTL(ctx, k).Result()
		assert.NoError(t, err, "key %s", k)
		assert.Greater(t, ttl, time.Duration(0), "key %s: TTL", k)
		assert.LessOrEqual(t, ttl, longest, "key %s: TTL", k)
	}
}

// TestMemoryStoreExpiry: an expired record reads as absent, and the sweep
// drops it.
func TestMemoryStoreExpiry(t *testing.T) {
	m := NewMemoryStore()
	defer m.Close()
	ctx := context.Background()
	put := func(key string, ttl time.Duration) {
		require.NoError(t, m.Update(ctx, key, func([]byte) (Change, error) {
			return Change{Write: true, Value: []byte("v"), TTL: ttl}, nil
		}))
	}
	get := func(key string) []byte {
		var got []byte
		m.Update(ctx, key, func(old []byte) (Change, error) { got = old; return Change{}, nil })
		return got
	}
	put("short", 20*time.Millisecond)
	put("long", time.Hour)
	time.Sleep(40 * time.Millisecond)
	require.Nil(t, get("short"), "short, expired")
	require.Equal(t, "v", string(get("long")), "long")
	m.sweepOnce(time.Now())
	n, _ := m.Len(ctx)
	require.Equal(t, 1, n, "records after the sweep")
	woken := make(chan struct{}, 1)
	unsub := m.Subscribe("long", func() { woken <- struct{}{} })
	m.Update(ctx, "long", func([]byte) (Change, error) { return Change{Wake: []string{"long"}}, nil })
	select {
	case <-woken:
	default:
		t.Fatal("subscriber not woken")
	}
	unsub()
	m.Update(ctx, "long", func([]byte) (Change, error) { return Change{Wake: []string{"long"}}, nil })
	select {
	case <-woken:
		t.Fatal("woken after unsubscribing")
	default:
	}
}
