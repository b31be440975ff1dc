package signal

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ipLimiter is a token bucket per client IPv4 address or IPv6 /64 (one
// subscriber usually holds a whole /64, so per-address buckets would be
// free to multiply). Idle buckets (full again) are dropped by a scan at most
// once per pruneEvery, so the map stays bounded by the recently active
// clients.
type ipLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[netip.Addr]*rate.Limiter
	lastPrune time.Time
}

const pruneEvery = time.Minute

// newIPLimiter returns nil (no limit) when perSecond < 0.
func newIPLimiter(perSecond float64, burst int) *ipLimiter {
	if perSecond < 0 {
		return nil
	}
	return &ipLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: make(map[netip.Addr]*rate.Limiter)}
}

// allow takes a token for ip; when none is left it returns false and how long
// until one will be.
func (l *ipLimiter) allow(ip netip.Addr, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastPrune) >= pruneEvery {
		l.lastPrune = now
		for a, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, a)
			}
		}
	}
	b := l.buckets[ip]
	if b == nil {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[ip] = b
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 || !r.OK() {
		r.CancelAt(now)
		if !r.OK() {
			d = time.Second
		}
		return false, d
	}
	return true, 0
}
