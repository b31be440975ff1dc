package netem

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_000_000, 0)

func TestShaperBottleneckPacesAtRate(t *testing.T) {
	t.Parallel()
	const (
		rate = 2.5e6 // 20 Mbit/s
		size = 1400
	)
	s := newShaper(Impairment{Rate: rate, QueueBytes: 64 << 10}, 1, t0)
	// Offer twice the rate for 2 s: one packet every size/(2*rate).
	gap := time.Duration(size / (2 * rate) * float64(time.Second))
	var deliveries []time.Time
	now := t0
	for now.Sub(t0) < 2*time.Second {
		deliveries = append(deliveries, s.admit(size, now)...)
		now = now.Add(gap)
	}
	st := s.stats
	require.Equal(t, st.Offered, st.Delivered+st.QueueDrops, "stats do not add up: %+v", st)
	require.Zero(t, st.Lost+st.OutageDrops, "stats do not add up: %+v", st)
	// Throughput from counts: bytes delivered over the span of delivery times.
	span := deliveries[len(deliveries)-1].Sub(deliveries[0]).Seconds()
	got := float64((len(deliveries)-1)*size) / span
	assert.InEpsilon(t, rate, got, 0.001, "delivered B/s")
	// Half the offered load cannot fit; the queue holds the rest.
	assert.InDelta(t, 0.5, float64(st.QueueDrops)/float64(st.Offered), 0.02, "share of packets dropped at the queue")
	assert.True(t, slices.IsSortedFunc(deliveries, func(a, b time.Time) int { return a.Compare(b) }), "a FIFO bottleneck reordered packets")
	// Back-to-back packets leave exactly size/rate apart.
	assert.Equal(t, time.Duration(size/rate*1e9), deliveries[len(deliveries)-1].Sub(deliveries[len(deliveries)-2]), "spacing")
}

func TestShaperTailDrop(t *testing.T) {
	t.Parallel()
	s := newShaper(Impairment{Rate: 1e6, QueueBytes: 10_000}, 1, t0)
	for range 100 {
		s.admit(1000, t0) // a burst in one instant
	}
	require.Equal(t, int64(10), s.stats.Delivered, "burst of 100 x 1000 B into a 10000 B queue: %+v", s.stats)
	require.Equal(t, int64(90), s.stats.QueueDrops, "burst of 100 x 1000 B into a 10000 B queue: %+v", s.stats)
	// 5 ms later 5000 B have drained: room for exactly 5 more.
	for range 10 {
		s.admit(1000, t0.Add(5*time.Millisecond))
	}
	require.Equal(t, int64(15), s.stats.Delivered, "delivered after draining 5 ms at 1 MB/s")
}

func TestShaperRandomLossFraction(t *testing.T) {
	t.Parallel()
	for _, loss := range []float64{0.01, 0.05, 0.3} {
		s := newShaper(Impairment{Loss: loss}, 7, t0)
		const n = 100_000
		for range n {
			s.admit(100, t0)
		}
		got := float64(s.stats.Lost) / n
		// 4 standard deviations of a binomial proportion.
		assert.InDelta(t, loss, got, 4*math.Sqrt(loss*(1-loss)/n), "Loss %.2f: share of packets lost", loss)
	}
}

func TestShaperBurstLoss(t *testing.T) {
	t.Parallel()
	s := newShaper(Impairment{BurstLoss: 0.01, BurstLength: 8}, 3, t0)
	var runs []int
	run := 0
	for range 200_000 {
		if len(s.admit(100, t0)) == 0 {
			run++
		} else if run > 0 {
			runs = append(runs, run)
			run = 0
		}
	}
	var sum int
	for _, r := range runs {
		sum += r
	}
	mean := float64(sum) / float64(len(runs))
	assert.InDelta(t, 8, mean, 1, "mean burst in packets over %d bursts", len(runs))
	// Bursts start at about BurstLoss per delivered packet.
	assert.InDelta(t, 0.01, float64(len(runs))/float64(s.stats.Delivered), 0.002, "bursts per delivered packet")
}

func TestShaperDelayJitterKeepOrder(t *testing.T) {
	t.Parallel()
	s := newShaper(Impairment{Delay: 50 * time.Millisecond, Jitter: 20 * time.Millisecond}, 5, t0)
	var prev time.Time
	for i := range 10_000 {
		now := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		at := s.admit(1000, now)[0]
		require.GreaterOrEqual(t, at.Sub(now), 50*time.Millisecond, "delay of packet %d", i)
		require.False(t, at.Before(prev), "packet %d overtook packet %d without Reorder", i, i-1)
		prev = at
	}
}

func TestShaperReorder(t *testing.T) {
	t.Parallel()
	s := newShaper(Impairment{Reorder: 0.1, ReorderDelay: 3 * time.Millisecond}, 9, t0)
	const n = 20_000
	type delivery struct {
		seq int
		at  time.Time
	}
	var ds []delivery
	for i := range n {
		// One packet per millisecond: a 3 ms hold lets the next 2-3 packets overtake.
		ds = append(ds, delivery{i, s.admit(100, t0.Add(time.Duration(i)*time.Millisecond))[0]})
	}
	slices.SortStableFunc(ds, func(a, b delivery) int { return a.at.Compare(b.at) })
	late := 0
	for i, d := range ds {
		if d.seq < i { // arrived after packets sent later
			late++
		}
	}
	assert.InDelta(t, 0.1, float64(late)/n, 0.02, "share of packets that arrived behind later ones")
}

func TestShaperDuplicate(t *testing.T) {
	t.Parallel()
	s := newShaper(Impairment{Duplicate: 0.2}, 11, t0)
	copies := 0
	const n = 50_000
	for range n {
		copies += len(s.admit(100, t0))
	}
	assert.InDelta(t, 0.2, float64(copies-n)/n, 0.01, "share duplicated")
	assert.Equal(t, int64(copies-n), s.stats.Duplicated, "Duplicated in the stats")
}

func TestShaperOutages(t *testing.T) {
	t.Parallel()
	s := newShaper(Impairment{Outages: []Outage{{Start: time.Second, Duration: 500 * time.Millisecond}}}, 1, t0)
	for ms := 0; ms < 3000; ms++ {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		dropped := len(s.admit(100, now)) == 0
		require.Equal(t, ms >= 1000 && ms < 1500, dropped, "dropped at %d ms", ms)
	}
	require.Equal(t, int64(500), s.stats.OutageDrops, "OutageDrops")
	s.manualEnd = t0.Add(4 * time.Second)
	require.Empty(t, s.admit(100, t0.Add(3500*time.Millisecond)), "a packet went through a manual outage")
}

func TestShaperIsDeterministic(t *testing.T) {
	t.Parallel()
	im := Impairment{Loss: 0.1, BurstLoss: 0.01, Jitter: 5 * time.Millisecond, Reorder: 0.05, Duplicate: 0.05}
	fates := func(seed uint64) []time.Time {
		s := newShaper(im, seed, t0)
		var all []time.Time
		for i := range 5000 {
			at := s.admit(100, t0.Add(time.Duration(i)*time.Millisecond))
			all = append(all, at...)
			all = append(all, time.Time{}) // separator: which packet each time belongs to
		}
		return all
	}
	a, b, c := fates(42), fates(42), fates(43)
	// slices.Equal compares the times with ==, exactly; a diff of 10000 times would not help.
	require.True(t, slices.Equal(a, b), "the same seed gave different fates")
	require.False(t, slices.Equal(a, c), "different seeds gave the same fates")
}

func TestImpairmentValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		im Impairment
		ok bool
	}{
		{Impairment{}, true},
		{Impairment{Loss: 1, Duplicate: 0.5, Rate: 1e6, Delay: time.Second}, true},
		{Impairment{Loss: 1.5}, false},
		{Impairment{Reorder: -0.1}, false},
		{Impairment{BurstLoss: math.NaN()}, false},
		{Impairment{Rate: -1}, false},
		{Impairment{QueueBytes: -1}, false},
		{Impairment{Jitter: -time.Millisecond}, false},
		{Impairment{Outages: []Outage{{Start: time.Second, Duration: -time.Second}}}, false},
	} {
		err := tc.im.Validate()
		if tc.ok {
			assert.NoError(t, err, "Validate(%+v)", tc.im)
		} else {
			assert.ErrorIs(t, err, ErrInvalidImpairment, "Validate(%+v)", tc.im)
		}
	}
}
