package signalserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Refusal reasons, the "reason" label of p2phttp_signal_refusals_total.
const (
	reasonBadRequest    = "bad_request"
	reasonRateLimited   = "rate_limited"
	reasonRoomRate      = "room_rate"
	reasonMaxRecords    = "max_records"
	reasonMaxParked     = "max_parked"
	reasonClientParked  = "client_parked"
	reasonNameplateFull = "nameplate_full"
	reasonStore         = "store_unavailable"
	reasonShutdown      = "shutting_down"
)

// metrics lives in a registry of its own so that several Servers (tests, or
// an embedding program with its own metrics) never collide. Every figure is
// this server's (instance's) own, even when it shares a store.
type metrics struct {
	reg           *prometheus.Registry
	parked        prometheus.Gauge
	claims        prometheus.Counter
	meets         prometheus.Counter
	messages      prometheus.Counter
	waits         prometheus.Counter
	pollTimeouts  prometheus.Counter
	hangups       prometheus.Counter
	refusals      *prometheus.CounterVec
	stunAnswered  prometheus.Counter
	stunIgnored   *prometheus.CounterVec
	relayRenewals prometheus.Counter
}

func newMetrics() *metrics {
	const ns = "p2phttp_signal_"
	m := &metrics{
		reg:          prometheus.NewRegistry(),
		parked:       prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "parked_polls", Help: "Long-polls parked on this server now."}),
		claims:       prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "claims_total", Help: "Nameplates claimed by a host through this server."}),
		meets:        prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "meets_total", Help: "Meetings opened (a guest met a host) through this server."}),
		messages:     prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "messages_total", Help: "Meeting messages accepted by this server."}),
		waits:        prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "waits_total", Help: "Long-polls that parked on this server."}),
		pollTimeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "poll_timeouts_total", Help: "Parked long-polls answered 202 (post again): deadline or shutdown."}),
		hangups:      prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "poll_hangups_total", Help: "Parked long-polls whose client closed the connection."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "refusals_total",
			Help: "Requests refused, by reason."}, []string{"reason"}),
		stunAnswered: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "stun_requests_total", Help: "STUN Binding requests answered."}),
		stunIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "stun_ignored_total",
			Help: "UDP datagrams on the STUN port that got no answer, by reason."}, []string{"reason"}),
		relayRenewals: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "relay_renewals_total", Help: "Relay credentials renewed for guests."}),
	}
	m.reg.MustRegister(m.parked, m.claims, m.meets, m.messages, m.waits, m.pollTimeouts, m.hangups, m.refusals,
		m.stunAnswered, m.stunIgnored, m.relayRenewals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{reasonBadRequest, reasonRateLimited, reasonRoomRate, reasonMaxRecords, reasonMaxParked,
		reasonClientParked, reasonNameplateFull, reasonStore, reasonShutdown} {
		m.refusals.WithLabelValues(r) // export zeros, so dashboards see every reason
	}
	return m
}
