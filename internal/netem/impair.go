package netem

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// ErrInvalidImpairment is returned (wrapped) by Impairment.Validate.
var ErrInvalidImpairment = errors.New("netem: invalid impairment")

// Impairment describes what happens to packets crossing one direction of a link. The zero value passes every
// packet at once, unchanged. Stages apply in this order: outage, random and burst loss, bottleneck queue, delay
// (with jitter and reordering), duplication.
type Impairment struct {
	// Loss is the probability that a packet is dropped at random, independently of the others.
	Loss float64
	// BurstLoss is the probability, per packet, that a burst of consecutive losses starts (a Gilbert model).
	BurstLoss float64
	// BurstLength is the mean number of packets a burst drops (geometrically distributed). Default 10.
	BurstLength float64

	// Rate is the bottleneck's rate in bytes per second; 0 means unlimited (no queue).
	Rate float64
	// QueueBytes is the bottleneck's tail-drop queue in bytes, counting the packet being transmitted: a packet
	// that would take the backlog above it is dropped and counted in Stats.QueueDrops. 0 means 64 KiB.
	QueueBytes int

	// Delay is the one-way propagation delay added to every packet.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter) to each packet. Packets keep their order unless
	// Reorder is set: a packet is never delivered before the one sent ahead of it.
	Jitter time.Duration
	// Reorder is the probability that a packet is held back by ReorderDelay, letting later packets overtake it.
	Reorder float64
	// ReorderDelay is how long a reordered packet is held back. Default 5 ms.
	ReorderDelay time.Duration
	// Duplicate is the probability that a packet is delivered twice.
	Duplicate float64

	// Outages are windows, measured from the link's creation, in which every packet is dropped.
	Outages []Outage
}

// Validate reports an error wrapping ErrInvalidImpairment when a probability is outside [0, 1] or a rate, size,
// delay or outage is negative. NewLink and Wrap do not check: call Validate on impairments that come from users.
func (im Impairment) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", im.Loss}, {"BurstLoss", im.BurstLoss}, {"Reorder", im.Reorder}, {"Duplicate", im.Duplicate}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("%w: %s %v is not a probability in [0, 1]", ErrInvalidImpairment, p.name, p.v)
		}
	}
	switch {
	case im.BurstLength < 0 || im.Rate < 0 || im.QueueBytes < 0:
		return fmt.Errorf("%w: negative BurstLength, Rate or QueueBytes", ErrInvalidImpairment)
	case im.Delay < 0 || im.Jitter < 0 || im.ReorderDelay < 0:
		return fmt.Errorf("%w: negative Delay, Jitter or ReorderDelay", ErrInvalidImpairment)
	}
	for _, o := range im.Outages {
		if o.Start < 0 || o.Duration < 0 {
			return fmt.Errorf("%w: outage %+v has a negative start or duration", ErrInvalidImpairment, o)
		}
	}
	return nil
}

// Outage is a window in which a link drops everything.
type Outage struct {
	Start    time.Duration // from the link's creation
	Duration time.Duration
}

// Stats counts what a link did with the packets it was given. Every packet offered ends in exactly one of
// Delivered, Lost, OutageDrops or QueueDrops; Duplicated counts extra copies, which are not in Delivered.
type Stats struct {
	Offered, OfferedBytes     int64
	Delivered, DeliveredBytes int64
	Lost                      int64 // random and burst loss
	OutageDrops               int64
	QueueDrops                int64 // tail drops at the bottleneck queue
	Duplicated                int64
}

// shaper decides the fate of each packet in computed time: whether it is dropped and when it (and any duplicate)
// is delivered. It holds no goroutines and no clock, so tests can drive it in virtual time.
type shaper struct {
	im         Impairment
	start      time.Time
	rng        *rand.Rand
	inBurst    bool
	lastDepart time.Time // when the bottleneck finishes sending everything queued so far
	lastArrive time.Time // delivery time of the latest in-order packet, to keep jitter from reordering
	manualEnd  time.Time // end of an outage started by Link.Outage
	stats      Stats
}

func newShaper(im Impairment, seed uint64, start time.Time) *shaper {
	if im.BurstLength < 1 {
		im.BurstLength = 10
	}
	if im.QueueBytes <= 0 {
		im.QueueBytes = 64 << 10
	}
	if im.ReorderDelay <= 0 {
		im.ReorderDelay = 5 * time.Millisecond
	}
	return &shaper{
		im:    im,
		start: start,
		rng:   rand.New(rand.NewPCG(seed, 0x6e6574656d)),
	}
}

// inOutage reports whether now falls in a scheduled or manual outage.
func (s *shaper) inOutage(now time.Time) bool {
	if now.Before(s.manualEnd) {
		return true
	}
	since := now.Sub(s.start)
	for _, o := range s.im.Outages {
		if since >= o.Start && since < o.Start+o.Duration {
			return true
		}
	}
	return false
}

// backlog returns the bytes queued at the bottleneck at now, the one in transmission included.
func (s *shaper) backlog(now time.Time) float64 {
	if s.im.Rate <= 0 || !s.lastDepart.After(now) {
		return 0
	}
	return s.lastDepart.Sub(now).Seconds() * s.im.Rate
}

// admit decides the fate of a packet of size bytes offered at now. It returns the delivery times (none when the
// packet is dropped; two when it is duplicated).
func (s *shaper) admit(size int, now time.Time) []time.Time {
	s.stats.Offered++
	s.stats.OfferedBytes += int64(size)
	if s.inOutage(now) {
		s.stats.OutageDrops++
		return nil
	}
	if s.im.BurstLoss > 0 {
		if s.inBurst {
			s.inBurst = s.rng.Float64() >= 1/s.im.BurstLength
		} else {
			s.inBurst = s.rng.Float64() < s.im.BurstLoss
		}
		if s.inBurst {
			s.stats.Lost++
			return nil
		}
	}
	if s.im.Loss > 0 && s.rng.Float64() < s.im.Loss {
		s.stats.Lost++
		return nil
	}
	depart := now
	if s.im.Rate > 0 {
		if s.backlog(now)+float64(size) > float64(s.im.QueueBytes) {
			s.stats.QueueDrops++
			return nil
		}
		depart = later(s.lastDepart, now).Add(time.Duration(float64(size) / s.im.Rate * float64(time.Second)))
		s.lastDepart = depart
	}
	at := depart.Add(s.im.Delay)
	if s.im.Jitter > 0 {
		at = at.Add(time.Duration(s.rng.Int64N(int64(s.im.Jitter))))
	}
	if s.im.Reorder > 0 && s.rng.Float64() < s.im.Reorder {
		at = at.Add(s.im.ReorderDelay) // held back; does not hold back those behind it
	} else {
		at = later(at, s.lastArrive)
		s.lastArrive = at
	}
	s.stats.Delivered++
	s.stats.DeliveredBytes += int64(size)
	if s.im.Duplicate > 0 && s.rng.Float64() < s.im.Duplicate {
		s.stats.Duplicated++
		return []time.Time{at, at}
	}
	return []time.Time{at}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
