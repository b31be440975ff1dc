package signalserver

import (
	"hash/maphash"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// client identifies who a request (or datagram) comes from, for the limits:
// an IPv4 address or IPv6 /64 (one subscriber usually holds a whole /64, so
// per-address limits would be free to multiply), and for IPv6 also the /56
// around it (an end site's usual allocation).
type client struct {
	ip  netip.Prefix // IPv4 /32 or IPv6 /64
	net netip.Prefix // IPv6 /56; invalid for IPv4
}

func clientOf(a netip.Addr) client {
	a = a.Unmap()
	if a.Is4() {
		p, _ := a.Prefix(32)
		return client{ip: p}
	}
	p64, _ := a.Prefix(64)
	p56, _ := a.Prefix(56)
	return client{ip: p64, net: p56}
}

// clientAddr finds a request's client address: the TCP peer, or when that
// is a trusted proxy, the right-most X-Forwarded-For entry that is not one.
func clientAddr(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		return addr, true
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		a, err := netip.ParseAddr(h)
		if err != nil {
			break // a mangled header: stop at the proxy
		}
		if a = a.Unmap(); !isTrusted(a, trusted) {
			return a, true
		}
		addr = a
	}
	return addr, true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// slotLimiter is a token-bucket rate limiter per prefix whose memory is fixed:
// prefixes hash (with a per-process random seed) into a fixed array of
// buckets. Sources that collide share a bucket, which only makes the limit
// stricter for them; a flood from any number of spoofed sources cannot grow
// it. A nil *slotLimiter allows everything.
type slotLimiter struct {
	seed  maphash.Seed
	limit rate.Limit
	burst int
	slots []atomic.Pointer[rate.Limiter] // nil until first used
}

// newSlotLimiter returns nil (no limit) when perSecond < 0.
func newSlotLimiter(perSecond float64, burst, slots int) *slotLimiter {
	if perSecond < 0 {
		return nil
	}
	return &slotLimiter{seed: maphash.MakeSeed(), limit: rate.Limit(perSecond), burst: burst,
		slots: make([]atomic.Pointer[rate.Limiter], slots)}
}

// allow takes a token for key; when none is left it returns false and how
// long until one will be.
func (l *slotLimiter) allow(key netip.Prefix, now time.Time) (bool, time.Duration) {
	if l == nil || !key.IsValid() {
		return true, 0
	}
	b, _ := key.MarshalBinary()
	return l.allowKey(string(b), now)
}

// has reports whether key has a token left, without taking it.
func (l *slotLimiter) has(key netip.Prefix, now time.Time) bool {
	if l == nil || !key.IsValid() {
		return true
	}
	b, _ := key.MarshalBinary()
	return l.bucket(string(b)).TokensAt(now) >= 1
}

// bucket is key's token bucket.
func (l *slotLimiter) bucket(key string) *rate.Limiter {
	p := &l.slots[maphash.String(l.seed, key)%uint64(len(l.slots))]
	s := p.Load()
	if s == nil {
		p.CompareAndSwap(nil, rate.NewLimiter(l.limit, l.burst))
		s = p.Load()
	}
	return s
}

// allowKey is allow for any key.
func (l *slotLimiter) allowKey(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	s := l.bucket(key)
	r := s.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 || !r.OK() {
		r.CancelAt(now)
		if !r.OK() {
			d = time.Second
		}
		return false, d
	}
	return true, 0
}

// parkedCounts counts the parked polls of this server, in all and per
// client, against the configured caps.
type parkedCounts struct {
	max, perIP, perNet int

	mu    sync.Mutex
	total int
	by    map[netip.Prefix]int // entries deleted at zero: bounded by the parked polls
}

// Refusal reasons of acquire.
const (
	parkOK = iota
	parkFull
	parkClientFull
)

// acquire takes a slot for c (the zero client: counted in the total only),
// or says which cap refused it.
func (p *parkedCounts) acquire(c client) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.total >= p.max:
		return parkFull
	case c.ip.IsValid() && p.by[c.ip] >= p.perIP, c.net.IsValid() && p.by[c.net] >= p.perNet:
		return parkClientFull
	}
	p.total++
	if c.ip.IsValid() {
		p.by[c.ip]++
	}
	if c.net.IsValid() {
		p.by[c.net]++
	}
	return parkOK
}

func (p *parkedCounts) release(c client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total--
	for _, k := range []netip.Prefix{c.ip, c.net} {
		if !k.IsValid() {
			continue
		}
		if p.by[k]--; p.by[k] <= 0 {
			delete(p.by, k)
		}
	}
}

func (p *parkedCounts) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}
