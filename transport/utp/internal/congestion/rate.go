package congestion

import (
	"sync"
	"time"
)

// AppLimitedObserver is implemented by controllers that model the path's
// delivery rate (NewBBR). The engine calls OnAppLimited when it has nothing
// left to send although the window and the pacer would let it send: samples
// taken while the application, not the path, set the pace then do not lower
// the model's estimate of the path. Without it, ten rounds of an application
// sending a message a round (request/response, an interactive stream) would
// expire the estimate, and the model would take the application's rate for
// the path's: the window would fall to a few packets, and the next burst would
// start from there.
type AppLimitedObserver interface {
	OnAppLimited(bytesInFlight int)
}

// rateRecords is how many send records the rate sampler keeps. It records at
// most one send per minRTT/rateRecordsPerRTT, so the ring always spans a few
// round trips whatever the rate.
const (
	rateRecords       = 512
	rateRecordsPerRTT = 128
)

// sendRecord is the delivery state when a packet left.
type sendRecord struct {
	sent        int64 // when it left, ns since the sampler's epoch
	delivered   int64 // bytes delivered by then
	deliveredAt int64 // when delivered last grew
	firstSent   int64 // when the earliest packet then in flight left
	// Bytes sent by then, counting the packets that left after it within
	// the record's spacing, and by firstSent.
	sentBytes, firstSentBytes int64
	appLimited                bool
}

// rateRings holds the send-record rings of samplers with nothing in flight,
// so that an idle connection keeps none and a busy one reuses another's.
var rateRings = sync.Pool{New: func() any { return new([rateRecords]sendRecord) }}

// rateSampler estimates the delivery rate the way TCP's rate sampling does
// (delivered bytes over the longer of the send and the ACK interval of a
// packet), but without per-packet state in the engine: it keeps the delivery
// state at each send in a ring, and finds the state when an acknowledged
// packet left from the ACK's RTT sample (sent = now - RTT). Taking the longer
// interval is what keeps ACKs bunched by a descheduled receiver, or by ACK
// aggregation, from reading as a burst of bandwidth.
//
// Nor may a sample count more bytes than left in its send interval: the
// packets acknowledged while a packet makes its round trip are, on a working
// path, those sent in the round trip before it. More is the acknowledgement
// of packets sent long before, which uTP's selective ACK could not report
// while a packet before them was missing (it reaches only so far past the
// gap) and the ACK that closes the gap reports at once. Counted, they would
// read as a burst of bandwidth of up to twice the path's and the model would
// overfill the path from then on.
type rateSampler struct {
	epoch          time.Time
	ring           *[rateRecords]sendRecord // from rateRings while anything is in flight; nil when idle
	head, n        int                      // head: the oldest record
	delivered      int64
	deliveredAt    int64
	firstSent      int64
	sentBytes      int64
	firstSentBytes int64
	lost           int64 // bytes declared lost
	appLimited     int64 // while delivered is below this, sends are app-limited; 0: not
}

func (r *rateSampler) ns(t time.Time) int64 {
	if r.epoch.IsZero() {
		r.epoch = t
	}
	return int64(t.Sub(r.epoch))
}

// onSent records the delivery state as a packet of size bytes leaves with
// bytesInFlight already in flight. minRTT spaces the records (0: unknown).
func (r *rateSampler) onSent(now time.Time, bytesInFlight, size int, minRTT time.Duration) {
	t := r.ns(now)
	if bytesInFlight == 0 {
		// Nothing in flight: the intervals start afresh, and an idle gap is
		// not counted as time the path took to deliver.
		r.firstSent, r.deliveredAt, r.firstSentBytes = t, t, r.sentBytes
	}
	r.sentBytes += int64(size)
	if r.ring == nil {
		r.ring, r.head, r.n = rateRings.Get().(*[rateRecords]sendRecord), 0, 0
	}
	if r.n > 0 {
		last := &r.ring[(r.head+r.n-1)%rateRecords]
		if t-last.sent < int64(minRTT/rateRecordsPerRTT) {
			last.sentBytes = r.sentBytes
			return
		}
	}
	rec := sendRecord{sent: t, delivered: r.delivered, deliveredAt: r.deliveredAt, firstSent: r.firstSent,
		sentBytes: r.sentBytes, firstSentBytes: r.firstSentBytes, appLimited: r.appLimited != 0}
	if r.n == rateRecords {
		r.ring[r.head] = rec
		r.head = (r.head + 1) % rateRecords
		return
	}
	r.ring[(r.head+r.n)%rateRecords] = rec
	r.n++
}

// idle returns the ring to the pool once every byte sent was acknowledged
// or declared lost: no ACK to come can need the records then. Nothing in
// flight is not enough on its own: packets set aside beyond the selective
// ACK's reach are neither, and may still be acknowledged.
func (r *rateSampler) idle() {
	if r.ring == nil || r.delivered+r.lost < r.sentBytes {
		return
	}
	rateRings.Put(r.ring)
	r.ring, r.head, r.n = nil, 0, 0
}

// onAppLimited marks sends from now until what is in flight is delivered,
// or longer if a timeout's mark reaches further.
func (r *rateSampler) onAppLimited(bytesInFlight int) {
	r.appLimited = max(r.appLimited, r.delivered+int64(bytesInFlight), 1)
}

// onRecoveryLimited marks sends as app-limited until every byte sent so far
// that was not declared lost has been delivered.
func (r *rateSampler) onRecoveryLimited() {
	r.appLimited = max(r.appLimited, r.sentBytes-r.lost, 1)
}

// rateSample is one delivery-rate measurement.
type rateSample struct {
	rate       float64 // bytes per second; 0: no sample
	appLimited bool
}

// onAck accounts acked bytes at now, for a packet that the ACK's RTT sample
// says left at now-rtt, and returns the rate sample it gives, if any.
// Samples over less than minRTT are dropped, as ACK compression makes them.
func (r *rateSampler) onAck(now time.Time, acked int, rtt, minRTT time.Duration) rateSample {
	t := r.ns(now)
	r.delivered += int64(acked)
	r.deliveredAt = t
	if r.appLimited != 0 && r.delivered > r.appLimited {
		r.appLimited = 0
	}
	if acked <= 0 || rtt <= 0 || r.n == 0 {
		return rateSample{}
	}
	sentAt := t - int64(rtt)
	// Binary search for the newest record at or before sentAt.
	lo, hi := 0, r.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.ring[(r.head+mid)%rateRecords].sent <= sentAt {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return rateSample{}
	}
	rec := &r.ring[(r.head+lo-1)%rateRecords]
	r.firstSent, r.firstSentBytes = rec.sent, rec.sentBytes
	interval := max(rec.sent-rec.firstSent, t-rec.deliveredAt)
	if interval <= 0 || interval < int64(minRTT) {
		return rateSample{}
	}
	delivered := min(r.delivered-rec.delivered, rec.sentBytes-rec.firstSentBytes)
	return rateSample{
		rate:       float64(delivered) / (float64(interval) / 1e9),
		appLimited: rec.appLimited,
	}
}

// maxFilter is a windowed maximum over rounds (Kathleen Nichols' algorithm,
// as Linux's win_minmax): the best, second best and third best samples of the
// window, so an old maximum expires without a list of every sample.
type maxFilter struct {
	s [3]struct {
		round int64
		v     float64
	}
}

func (f *maxFilter) get() float64 { return f.s[0].v }

func (f *maxFilter) reset(round int64, v float64) {
	for i := range f.s {
		f.s[i].round, f.s[i].v = round, v
	}
}

// update adds v at round, for a window of win rounds.
func (f *maxFilter) update(round, win int64, v float64) {
	if v >= f.s[0].v || round-f.s[2].round > win {
		f.reset(round, v)
		return
	}
	if v >= f.s[1].v {
		f.s[1].round, f.s[1].v = round, v
		f.s[2] = f.s[1]
	} else if v >= f.s[2].v {
		f.s[2].round, f.s[2].v = round, v
	}
	// Expire the best when it leaves the window, and let the others age up.
	dt := round - f.s[0].round
	switch {
	case dt > win:
		f.s[0], f.s[1] = f.s[1], f.s[2]
		f.s[2].round, f.s[2].v = round, v
		if round-f.s[0].round > win {
			f.s[0], f.s[1] = f.s[1], f.s[2]
			f.s[2].round, f.s[2].v = round, v
		}
	case f.s[1].round == f.s[0].round && dt > win/4:
		f.s[1].round, f.s[1].v = round, v
		f.s[2] = f.s[1]
	case f.s[2].round == f.s[1].round && dt > win/2:
		f.s[2].round, f.s[2].v = round, v
	}
}
