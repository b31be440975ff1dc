// Package meter measures a byte stream as it arrives: how many bytes, when the first and the last came, the
// longest wait between two arrivals (a stall), and the SHA-256 of the bytes, for benchmarks and tests that must
// show a transfer was complete, exact and never stuck.
package meter

import (
	"crypto/sha256"
	"hash"
	"sync"
	"time"
)

// Meter is an io.Writer that records what is written to it; copy a stream into it (or through
// io.MultiWriter) as it is read. Its methods are safe for concurrent use, so another goroutine can look at a
// transfer in progress.
type Meter struct {
	mu          sync.Mutex
	n           int64
	first, last time.Time
	maxGap      time.Duration
	sum         hash.Hash
}

// New returns an empty Meter.
func New() *Meter { return &Meter{sum: sha256.New()} }

// Write records the arrival of p now. It never fails.
func (m *Meter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.first.IsZero() {
		m.first = now
	} else if gap := now.Sub(m.last); gap > m.maxGap {
		m.maxGap = gap
	}
	m.last = now
	m.n += int64(len(p))
	m.sum.Write(p)
	return len(p), nil
}

// Snapshot is what a Meter has seen so far.
type Snapshot struct {
	Bytes int64
	// First and Last are when the first and the last bytes arrived; zero before any byte.
	First, Last time.Time
	// MaxGap is the longest time between two consecutive arrivals.
	MaxGap time.Duration
	// SHA256 is the hash of every byte so far.
	SHA256 [sha256.Size]byte
}

// Duration is the time from the first byte to the last.
func (s Snapshot) Duration() time.Duration { return s.Last.Sub(s.First) }

// Rate is the rate in bytes per second from the first byte to the last, 0 when that time is zero.
func (s Snapshot) Rate() float64 {
	if d := s.Duration(); d > 0 {
		return float64(s.Bytes) / d.Seconds()
	}
	return 0
}

// Snapshot returns the counters so far.
func (m *Meter) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{Bytes: m.n, First: m.first, Last: m.last, MaxGap: m.maxGap}
	m.sum.Sum(s.SHA256[:0])
	return s
}
