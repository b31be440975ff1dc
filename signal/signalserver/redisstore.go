package signalserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is a Store in Redis, so that any number of servers share one
// namespace: a peer may reach a different server at each request, and a
// server that dies loses nothing (the records are in Redis, and a peer's
// next poll reaches another server). Every record carries a TTL, so nothing
// outlives its use. Wake-ups travel on one Redis pub/sub channel that every
// server subscribes to.
//
// Use a Redis database of its own (its key count is the MaxRecords figure),
// on a single Redis server (an update's keys are written in one MULTI, which
// Redis Cluster would refuse across slots). When Redis restarts without
// persistence, the nameplates and meetings in flight are lost: the store
// logs it, parked polls re-register (a waiting host claims its nameplate
// again, a waiting guest waits again), and meetings in flight end with
// "meeting expired".
type RedisStore struct {
	rdb     *redis.Client
	ps      *redis.PubSub
	addr    string
	channel string
	log     *slog.Logger
	wakers  wakers
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	runID   string // Redis's run_id when (re)subscribed; only the receive loop touches it
}

// keyPrefix prefixes every key and the wake-up channel.
const keyPrefix = "p2phttp:signal:"

// maxUpdateAttempts bounds the optimistic retries of an update whose key
// keeps changing under it.
const maxUpdateAttempts = 64

// NewRedisStore connects to the Redis at rawURL (redis://[:PASSWORD@]HOST:PORT/DB,
// or rediss:// for TLS; go-redis's options such as ?pool_size=N may follow)
// and subscribes to the wake-up channel. It fails when
// Redis cannot be reached within ctx. log (nil: discard) hears about outages
// and restarts.
func NewRedisStore(ctx context.Context, rawURL string, log *slog.Logger) (*RedisStore, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("signalserver: redis URL: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.MaxRetries = 1
	if !strings.Contains(rawURL, "pool_size=") {
		// Wake-ups come in bursts (every parked poll of a busy nameplate
		// looks again at once): more than go-redis's 10 per CPU.
		opt.PoolSize = max(64, 10*runtime.GOMAXPROCS(0))
	}
	rdb := redis.NewClient(opt)
	r := &RedisStore{rdb: rdb, addr: opt.Addr, channel: keyPrefix + "wake", log: log, done: make(chan struct{})}
	if r.runID, err = r.serverRunID(ctx); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("signalserver: redis at %s: %w", opt.Addr, err)
	}
	r.ps = rdb.Subscribe(ctx, r.channel)
	if _, err := r.ps.Receive(ctx); err != nil { // the subscription's confirmation
		r.ps.Close()
		rdb.Close()
		return nil, fmt.Errorf("signalserver: redis at %s: subscribing: %w", opt.Addr, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.receive(lctx)
	return r, nil
}

func (r *RedisStore) serverRunID(ctx context.Context) (string, error) {
	info, err := r.rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", nil
}

// receive dispatches wake-ups until ctx ends. go-redis reconnects and
// re-subscribes after an outage; the new confirmation tells us so, and then
// every local poller looks at its records again (it may have missed wake-ups,
// and Redis may have lost the records).
func (r *RedisStore) receive(ctx context.Context) {
	defer close(r.done)
	down := false
	for {
		msg, err := r.ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !down {
				down = true
				r.log.Error("signalserver: redis unreachable; requests fail with 503 until it is back", "addr", r.addr, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			r.wakers.wake(m.Payload)
		case *redis.Subscription:
			down = false
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			id, err := r.serverRunID(rctx)
			cancel()
			if err == nil && id != r.runID {
				r.runID = id
				r.log.Error("signalserver: redis restarted: nameplates, meetings and messages it did not persist are lost; "+
					"meetings in flight fail, waiting peers re-register", "addr", r.addr)
			} else {
				r.log.Warn("signalserver: redis connection restored; parked polls re-check their records", "addr", r.addr)
			}
			r.wakers.wakeAll()
		}
	}
}

// Update implements Store with WATCH/MULTI: optimistic, retried when the key
// changed between the read and the write.
func (r *RedisStore) Update(ctx context.Context, key string, fn func(old []byte) (Change, error)) error {
	k := keyPrefix + key
	var fnErr error
	txf := func(tx *redis.Tx) error {
		old, err := tx.Get(ctx, k).Bytes()
		if errors.Is(err, redis.Nil) {
			old, err = nil, nil
		}
		if err != nil {
			return err
		}
		ch, err := fn(old)
		if err != nil {
			fnErr = err
			return err
		}
		if !ch.Write && len(ch.Also) == 0 && len(ch.Wake) == 0 {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if ch.Write {
				if ch.Value == nil {
					p.Del(ctx, k)
				} else {
					p.Set(ctx, k, ch.Value, ch.TTL)
				}
			}
			for _, a := range ch.Also {
				if a.Value == nil {
					p.Del(ctx, keyPrefix+a.Key)
				} else {
					p.Set(ctx, keyPrefix+a.Key, a.Value, a.TTL)
				}
			}
			for _, w := range ch.Wake {
				p.Publish(ctx, r.channel, w)
			}
			return nil
		})
		return err
	}
	for range maxUpdateAttempts {
		fnErr = nil
		err := r.rdb.Watch(ctx, txf, k)
		switch {
		case err == nil:
			return nil
		case fnErr != nil:
			return fnErr
		case errors.Is(err, redis.TxFailedErr):
			continue // the key changed under us: again
		default:
			return fmt.Errorf("%w: redis at %s: %v", ErrStoreUnavailable, r.addr, err)
		}
	}
	return fmt.Errorf("%w: redis at %s: key %s kept changing", ErrStoreUnavailable, r.addr, key)
}

// Subscribe implements Store.
func (r *RedisStore) Subscribe(key string, wake func()) func() { return r.wakers.subscribe(key, wake) }

// Len implements Store: the size of the Redis database.
func (r *RedisStore) Len(ctx context.Context) (int, error) {
	n, err := r.rdb.DBSize(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("%w: redis at %s: %v", ErrStoreUnavailable, r.addr, err)
	}
	return int(n), nil
}

// Ping implements Store.
func (r *RedisStore) Ping(ctx context.Context) error {
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: redis at %s: %v", ErrStoreUnavailable, r.addr, err)
	}
	return nil
}

// Addr is the Redis server's HOST:PORT.
func (r *RedisStore) Addr() string { return r.addr }

// Close implements Store.
func (r *RedisStore) Close() error {
	var err error
	r.once.Do(func() {
		r.cancel()
		r.ps.Close()
		<-r.done
		err = r.rdb.Close()
	})
	return err
}
