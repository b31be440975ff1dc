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
	s.mux.HandleFunc(signal.HostPath, s.post(s.host))
	s.mux.HandleFunc(signal.GuestPath, s.post(s.guest))
	s.mux.HandleFunc(signal.ReleasePath, s.post(s.release))
	s.mux.HandleFunc(signal.SendPath, s.post(s.send))
	s.mux.HandleFunc(signal.RecvPath, s.post(s.recv))
	s.mux.HandleFunc(signal.ClosePath, s.post(s.closeMeeting))
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
	arg    string // the nameplate or meeting ID of the path
	body   []byte
	w      http.ResponseWriter
	r      *http.Request
}

// post wraps a protocol handler: method, rate limits, body.
func (s *Server) post(h func(*request)) http.HandlerFunc {
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
		now := time.Now()
		if ok, wait := s.rate.allow(c.ip, now); !ok {
			s.refuse(w, reasonRateLimited, retryReply(http.StatusTooManyRequests, "rate limit exceeded; slow down", wait))
			return
		}
		if ok, wait := s.rateNet.allow(c.net, now); !ok {
			s.refuse(w, reasonRateLimited, retryReply(http.StatusTooManyRequests, "rate limit of your IPv6 /56 exceeded; slow down", wait))
			return
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
		} else {
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
func (s *Server) decode(rq *request, v any, peerID *string, version *int) bool {
	dec := json.NewDecoder(strings.NewReader(string(rq.body)))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
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
