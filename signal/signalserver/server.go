package signalserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/p2phttp/p2phttp/signal"
)

// Server is the signalling server: an http.Handler for the protocol's
// endpoints (see package signal), /healthz and /metrics, and a STUN responder
// (ServeSTUN). Its state lives in Config.Store. It is safe for concurrent
// use.
type Server struct {
	cfg       Config
	store     Store
	ownStore  bool // the Server made store and closes it
	log       *slog.Logger
	metrics   *metrics
	promHTTP  http.Handler
	mux       *http.ServeMux
	rate      *slotLimiter // per IPv4 address or IPv6 /64
	rateNet   *slotLimiter // per IPv6 /56
	roomRate  *slotLimiter // new claims and meetings per client
	peerRate  *slotLimiter // a peer's requests in its meeting, a claimed host's polls
	strikes   *slotLimiter // per client: meeting requests naming a meeting it is not in
	stunRate  *slotLimiter
	parked    parkedCounts
	closeOnce sync.Once

	// mu guards the parked polls' registry and closed.
	mu     sync.Mutex
	polls  map[*parkedPoll]struct{}
	closed bool // Close was called: refuse requests, hand parked polls back
}

// New returns a Server with cfg's store and limits (zero fields take
// defaults).
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{
		cfg:      cfg,
		store:    cfg.Store,
		log:      cfg.Logger,
		metrics:  newMetrics(),
		rate:     newSlotLimiter(cfg.RatePerIP, cfg.RateBurst, cfg.LimiterSlots),
		roomRate: newSlotLimiter(cfg.RoomRatePerIP, cfg.RoomBurst, cfg.LimiterSlots),
		peerRate: newSlotLimiter(cfg.PeerRate, cfg.PeerBurst, cfg.LimiterSlots),
		strikes:  newSlotLimiter(cfg.RatePerIP, cfg.RateBurst, cfg.LimiterSlots),
		stunRate: newSlotLimiter(cfg.STUNRatePerIP, cfg.STUNBurst, cfg.LimiterSlots),
		parked:   parkedCounts{max: cfg.MaxParked, perIP: cfg.MaxParkedPerIP, perNet: cfg.MaxParkedPerIPv6Net, by: make(map[netip.Prefix]int)},
		polls:    make(map[*parkedPoll]struct{}),
	}
	if cfg.RatePerIP >= 0 {
		s.rateNet = newSlotLimiter(cfg.RatePerIPv6Net, cfg.RateBurstIPv6Net, cfg.LimiterSlots)
	}
	if s.store == nil {
		s.store, s.ownStore = NewMemoryStore(), true
	}
	s.promHTTP = promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	s.mux = http.NewServeMux()
	s.mux.HandleFunc(signal.HostPath, s.post(s.host, limitLater))
	s.mux.HandleFunc(signal.GuestPath, s.post(s.guest, limitClient))
	s.mux.HandleFunc(signal.ReleasePath, s.post(s.release, limitClient))
	s.mux.HandleFunc(signal.SendPath, s.post(s.send, limitMeeting))
	s.mux.HandleFunc(signal.RecvPath, s.post(s.recv, limitMeeting))
	s.mux.HandleFunc(signal.ClosePath, s.post(s.closeMeeting, limitMeeting))
	s.mux.HandleFunc(signal.RelayPath, s.post(s.renewRelay, limitClient))
	s.mux.HandleFunc(signal.HealthzPath, s.healthz)
	s.mux.HandleFunc(signal.MetricsPath, s.serveMetrics)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeReply(w, errorReply(http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path))
	})
	return s
}

// ServeHTTP serves the endpoints of the signalling protocol (the XxxPath
// constants of package signal). Every error is a JSON signal.ErrorResponse.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p == "" || p[0] != '/' || path.Clean(p) != p {
		// http.ServeMux would redirect to the clean path, with a text body.
		writeReply(w, errorReply(http.StatusNotFound, "no such endpoint: "+r.Method+" "+p))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// request is what every protocol handler gets: the parsed client, the path's
// wildcard and the body.
type request struct {
	client client
	slot   client // whose parked-poll slot the request holds (acquire)
	arg    string // the nameplate or meeting ID of the path
	body   []byte
	w      http.ResponseWriter
	r      *http.Request
}

// Which rate limits a request is held to. The per-client rates (RatePerIP
// and the IPv6 /56's) guard against floods of new claims and meetings; a
// busy host makes several requests for every guest it meets, all from one
// address, so requests within a meeting (and a claimed host's polls) count
// against the peer's own rate (PeerRate) instead, and against the client's
// only when they name a meeting the client is not in.
const (
	limitClient  = iota // the per-client rates, up front
	limitMeeting        // the peer's rate in its meeting; strikes for a meeting it is not in
	limitLater          // the handler decides (a host: claimed or not)
)

// limitClientRate takes a token of c's per-client rates, or returns the
// refusal.
func (s *Server) limitClientRate(c client) (reply, bool) {
	now := time.Now()
	if ok, wait := s.rate.allow(c.ip, now); !ok {
		return retryReply(http.StatusTooManyRequests, "rate limit exceeded; slow down", wait), false
	}
	if ok, wait := s.rateNet.allow(c.net, now); !ok {
		return retryReply(http.StatusTooManyRequests, "rate limit of your IPv6 /56 exceeded; slow down", wait), false
	}
	return reply{}, true
}

// limitPeer takes a token of the rate of peerID in room (a meeting or a
// nameplate), or returns the refusal.
func (s *Server) limitPeer(room, peerID string) (reply, bool) {
	if ok, wait := s.peerRate.allowKey(room+"/"+peerID, time.Now()); !ok {
		return retryReply(http.StatusTooManyRequests, "rate limit of your meeting exceeded; slow down", wait), false
	}
	return reply{}, true
}

// strike charges c for a meeting request naming a meeting it is not in.
func (s *Server) strike(c client) { s.strikes.allow(c.ip, time.Now()) }

// post wraps a protocol handler: method, rate limits (limit: one of the
// limitXxx), body.
func (s *Server) post(h func(*request), limit int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			s.refuse(w, reasonBadRequest, errorReply(http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use POST"))
			return
		}
		addr, ok := clientAddr(r, s.cfg.TrustedProxies)
		if !ok {
			s.refuse(w, reasonBadRequest, errorReply(http.StatusBadRequest, "cannot tell the client's address"))
			return
		}
		c := clientOf(addr)
		switch limit {
		case limitClient:
			if rp, ok := s.limitClientRate(c); !ok {
				s.refuse(w, reasonRateLimited, rp)
				return
			}
		case limitMeeting:
			if !s.strikes.has(c.ip, time.Now()) {
				s.refuse(w, reasonRateLimited, retryReply(http.StatusTooManyRequests, "too many requests for meetings you are not in; slow down", time.Second))
				return
			}
		}
		if s.isClosed() {
			s.refuse(w, reasonShutdown, retryReply(http.StatusServiceUnavailable, signal.MsgShuttingDown, 0))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, signal.MaxRequestBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.refuse(w, reasonBadRequest, errorReply(http.StatusRequestEntityTooLarge,
					fmt.Sprintf("request body over %d bytes", signal.MaxRequestBytes)))
			} else {
				s.refuse(w, reasonBadRequest, errorReply(http.StatusBadRequest, "reading request body: "+err.Error()))
			}
			return
		}
		arg := r.PathValue("nameplate")
		if arg != "" {
			if err := signal.ValidateNameplate(arg); err != nil {
				s.refuse(w, reasonBadRequest, errorReply(http.StatusBadRequest, strings.TrimPrefix(err.Error(), "signal: ")))
				return
			}
		} else if strings.Contains(r.Pattern, "{meeting}") {
			arg = r.PathValue("meeting")
			if err := signal.ValidateMeetingID(arg); err != nil {
				s.refuse(w, reasonBadRequest, errorReply(http.StatusBadRequest, strings.TrimPrefix(err.Error(), "signal: ")))
				return
			}
		}
		h(&request{client: c, arg: arg, body: body, w: w, r: r})
	}
}

// decode parses the body into v (rejecting unknown fields and trailing data)
// and checks its peer ID. It answers the request itself when it fails.
func (s *Server) decode(rq *request, v any, peerID *string, version *int) bool { // peerID, version: nil when the body has none
	dec := json.NewDecoder(strings.NewReader(string(rq.body)))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil && peerID != nil {
		err = signal.ValidatePeerID(*peerID)
	}
	if err == nil && version != nil && *version != signal.Version {
		err = fmt.Errorf("unsupported protocol version %d: this server speaks %d", *version, signal.Version)
	}
	if err != nil {
		s.refuse(rq.w, reasonBadRequest, errorReply(http.StatusBadRequest, "bad request body: "+strings.TrimPrefix(err.Error(), "signal: ")))
		return false
	}
	return true
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// reply is a response, prepared before it is written.
type reply struct {
	status     int
	body       []byte
	retryAfter int // seconds; 0: no Retry-After header
}

func okReply(v any) reply { return reply{status: http.StatusOK, body: append(mustJSON(v), '\n')} }

func errorReply(status int, msg string) reply {
	return reply{status: status, body: append(mustJSON(signal.ErrorResponse{Error: msg}), '\n')}
}

// retryReply is an error with Retry-After: wait rounded up to seconds, at
// least 1.
func retryReply(status int, msg string, wait time.Duration) reply {
	rp := errorReply(status, msg)
	rp.retryAfter = max(1, int((wait+time.Second-1)/time.Second))
	return rp
}

var (
	waitingReply = okReply(signal.WaitingResponse{Status: signal.StatusWaiting})
	emptyReply   = reply{status: http.StatusOK, body: []byte("{}\n")}
)

func init() { waitingReply.status = http.StatusAccepted }

func writeReply(w http.ResponseWriter, rp reply) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(rp.body)))
	if rp.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(rp.retryAfter))
	}
	w.WriteHeader(rp.status)
	w.Write(rp.body)
}

// refuse answers a request the server turns down, counting it by reason.
func (s *Server) refuse(w http.ResponseWriter, reason string, rp reply) {
	s.metrics.refusals.WithLabelValues(reason).Inc()
	s.log.Debug("signalserver: refused", "reason", reason, "status", rp.status)
	writeReply(w, rp)
}

// storeFailed answers a request whose store operation failed: 503 when the
// store is unreachable, 500 for a bug.
func (s *Server) storeFailed(w http.ResponseWriter, err error) {
	s.log.Warn("signalserver: store", "err", err)
	s.refuse(w, reasonStore, storeErrorReply(err))
}

func storeErrorReply(err error) reply {
	if errors.Is(err, ErrStoreUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return retryReply(http.StatusServiceUnavailable, signal.MsgStoreUnavailable, time.Second)
	}
	return errorReply(http.StatusInternalServerError, "internal error")
}

// storeCtx bounds one store operation.
func (s *Server) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeReply(w, errorReply(http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET"))
		return
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	h := signal.HealthResponse{Status: "ok", Store: "memory", Relay: s.cfg.RelayURLs}
	if rs, ok := s.store.(*RedisStore); ok {
		h.Store = "redis " + rs.addr
	}
	status := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		h.Status, h.Error, status = "unavailable", err.Error(), http.StatusServiceUnavailable
	}
	rp := okReply(h)
	rp.status = status
	writeReply(w, rp)
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeReply(w, errorReply(http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET"))
		return
	}
	s.metrics.parked.Set(float64(s.parked.count()))
	s.promHTTP.ServeHTTP(w, r)
}

// Close refuses further requests and hands every parked long-poll back to
// its client with a 202 (post again) on a closing connection, so the client's
// next poll reaches another server sharing the store, or this one restarted:
// nothing a peer waits for is lost. Serve calls it when its context ends; a
// program that mounts the Server in its own http.Server should call it from
// http.Server.RegisterOnShutdown, because parked long-polls are hijacked and
// invisible to http.Server.Shutdown. Close closes the store if the Server
// made it.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	polls := make([]*parkedPoll, 0, len(s.polls))
	for pp := range s.polls {
		polls = append(polls, pp)
	}
	s.mu.Unlock()
	for _, pp := range polls {
		pp.handBack()
	}
	for _, pp := range polls {
		<-pp.done
	}
	var err error
	s.closeOnce.Do(func() {
		if s.ownStore {
			err = s.store.Close()
		}
	})
	return err
}
