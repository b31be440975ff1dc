package signal

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Refusal reasons, the "reason" label of p2phttp_signal_refusals_total.
const (
	refuseBadRequest  = "bad_request"
	refuseRoomFull    = "room_full"
	refuseRateLimited = "rate_limited"
	refuseMaxRooms    = "max_rooms"
	refuseMaxWaiting  = "max_waiting"
	refuseShutdown    = "shutting_down"
)

// metrics lives in a registry of its own so that several Servers (tests, or
// an embedding program with its own metrics) never collide.
type metrics struct {
	reg          *prometheus.Registry
	rooms        prometheus.Gauge
	waiting      prometheus.Gauge
	meets        prometheus.Counter
	expired      prometheus.Counter
	pollTimeouts prometheus.Counter
	refusals     *prometheus.CounterVec
	stunAnswered prometheus.Counter
	stunIgnored  *prometheus.CounterVec
}

func newMetrics() *metrics {
	const ns = "p2phttp_signal_"
	m := &metrics{
		reg:          prometheus.NewRegistry(),
		rooms:        prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "rooms", Help: "Rooms that exist now."}),
		waiting:      prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "waiting_peers", Help: "Long-polls parked waiting for a peer."}),
		meets:        prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "meets_total", Help: "Rooms in which a second peer arrived."}),
		expired:      prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "rooms_expired_total", Help: "Rooms dropped because their TTL ran out."}),
		pollTimeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "poll_timeouts_total", Help: "Long-polls answered 202 (still waiting) at their deadline."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "refusals_total",
			Help: "Requests refused, by reason."}, []string{"reason"}),
		stunAnswered: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "stun_requests_total", Help: "STUN Binding requests answered."}),
		stunIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "stun_ignored_total",
			Help: "UDP datagrams on the STUN port that got no answer, by reason."}, []string{"reason"}),
	}
	m.reg.MustRegister(m.rooms, m.waiting, m.meets, m.expired, m.pollTimeouts, m.refusals, m.stunAnswered, m.stunIgnored,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{refuseBadRequest, refuseRoomFull, refuseRateLimited, refuseMaxRooms, refuseMaxWaiting, refuseShutdown} {
		m.refusals.WithLabelValues(r) // export zeros, so dashboards see every reason
	}
	return m
}
