package signalserver

import (
	"context"
	"sync"
	"time"
)

// MemoryStore is a Store in the process's memory: the default, for a single
// server. Expired records are dropped when read and by a sweep every
// memorySweepEvery, so memory follows the live records.
type MemoryStore struct {
	wakers wakers
	stop   chan struct{}
	once   sync.Once

	mu   sync.Mutex
	recs map[string]memRecord
}

type memRecord struct {
	value   []byte
	expires time.Time
}

const memorySweepEvery = 10 * time.Second

// NewMemoryStore returns an empty MemoryStore; Close stops its sweeper.
func NewMemoryStore() *MemoryStore {
	m := &MemoryStore{recs: make(map[string]memRecord), stop: make(chan struct{})}
	go m.sweep()
	return m
}

func (m *MemoryStore) sweep() {
	t := time.NewTicker(memorySweepEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.sweepOnce(now)
		}
	}
}

// sweepOnce drops the records expired at now.
func (m *MemoryStore) sweepOnce(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, r := range m.recs {
		if !now.Before(r.expires) {
			delete(m.recs, k)
		}
	}
}

// Update implements Store; fn runs under the store's lock.
func (m *MemoryStore) Update(ctx context.Context, key string, fn func(old []byte) (Change, error)) error {
	now := time.Now()
	m.mu.Lock()
	var old []byte
	if r, ok := m.recs[key]; ok && now.Before(r.expires) {
		old = r.value
	}
	ch, err := fn(old)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	if ch.Write {
		m.put(key, ch.Value, ch.TTL, now)
	}
	for _, p := range ch.Also {
		m.put(p.Key, p.Value, p.TTL, now)
	}
	m.mu.Unlock()
	for _, k := range ch.Wake {
		m.wakers.wake(k)
	}
	return nil
}

func (m *MemoryStore) put(key string, value []byte, ttl time.Duration, now time.Time) {
	if value == nil {
		delete(m.recs, key)
		return
	}
	m.recs[key] = memRecord{value: value, expires: now.Add(ttl)}
}

// Subscribe implements Store.
func (m *MemoryStore) Subscribe(key string, wake func()) func() { return m.wakers.subscribe(key, wake) }

// Ping implements Store: memory is always there.
func (m *MemoryStore) Ping(context.Context) error { return nil }

// Close implements Store.
func (m *MemoryStore) Close() error {
	m.once.Do(func() { close(m.stop) })
	return nil
}

// Len implements Store. It counts expired records not yet swept too.
func (m *MemoryStore) Len(context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs), nil
}
