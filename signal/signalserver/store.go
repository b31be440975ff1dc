package signalserver

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Store keeps the server's state: small records under string keys, updated
// atomically, and wake-ups that reach every server sharing the store. A
// server keeps nothing of a meeting outside its Store, so servers that share
// one (RedisStore) serve one namespace: a peer may reach any of them at each
// request.
//
// NewMemoryStore keeps the records in the process; NewRedisStore in Redis.
type Store interface {
	// Update reads key (nil when absent or expired), calls fn with it and
	// commits fn's Change atomically: if key changed meanwhile, fn runs
	// again on the new value. fn must be free of side effects. An error
	// from fn aborts the update and is returned as is.
	Update(ctx context.Context, key string, fn func(old []byte) (Change, error)) error
	// Subscribe calls wake (on a goroutine of the store's, so it must not
	// block) whenever a committed Change names key in Wake, on any server
	// sharing the store, and whenever the store reconnects after an outage
	// (records may have been lost). It returns the function that stops that.
	Subscribe(key string, wake func()) (unsubscribe func())
	// Len is the number of records in the store (all servers sharing it
	// together), for the MaxRecords cap.
	Len(ctx context.Context) (int, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// Change is what an update writes. The zero Change writes nothing.
type Change struct {
	// Write makes the update write Value (delete the key when Value is
	// nil), expiring after TTL (which must be positive when Value is not
	// nil).
	Write bool
	Value []byte
	TTL   time.Duration
	// Also writes other keys blindly in the same transaction.
	Also []Put
	// Wake lists keys whose subscribers are woken once the update
	// committed.
	Wake []string
}

// Put is a blind write of one key.
type Put struct {
	Key   string
	Value []byte
	TTL   time.Duration
}

// ErrStoreUnavailable wraps a store's failure to answer (Redis down).
var ErrStoreUnavailable = errors.New("signalserver: store unavailable")

// wakers is the in-process half of Subscribe: who waits on which key.
type wakers struct {
	mu   sync.Mutex
	subs map[string]map[*waker]struct{}
}

type waker struct{ fn func() }

func (w *wakers) subscribe(key string, fn func()) func() {
	wk := &waker{fn: fn}
	w.mu.Lock()
	if w.subs == nil {
		w.subs = make(map[string]map[*waker]struct{})
	}
	set := w.subs[key]
	if set == nil {
		set = make(map[*waker]struct{})
		w.subs[key] = set
	}
	set[wk] = struct{}{}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(set, wk)
		if len(w.subs[key]) == 0 {
			delete(w.subs, key)
		}
		w.mu.Unlock()
	}
}

// wake calls the subscribers of key.
func (w *wakers) wake(key string) {
	w.mu.Lock()
	fns := make([]func(), 0, len(w.subs[key]))
	for wk := range w.subs[key] {
		fns = append(fns, wk.fn)
	}
	w.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// wakeAll calls every subscriber (after the store came back from an outage).
func (w *wakers) wakeAll() {
	w.mu.Lock()
	var fns []func()
	for _, set := range w.subs {
		for wk := range set {
			fns = append(fns, wk.fn)
		}
	}
	w.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}
