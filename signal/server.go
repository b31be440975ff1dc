package signal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServerConfig holds the server's limits. The zero value of every field means
// its default; the defaults are safe for a small public server.
type ServerConfig struct {
	// MaxBodyBytes caps a request body (an offer is well under 2 KiB).
	// Default 8 KiB; larger bodies get 413.
	MaxBodyBytes int64
	// MaxCandidates caps the candidates in one offer. Default
	// DefaultMaxCandidates; clients enforce the default too.
	MaxCandidates int
	// MaxRooms caps the rooms that exist at once. Default 50,000; beyond it a
	// join that would open a room gets 503 with Retry-After.
	MaxRooms int
	// MaxWaiting caps the long-polls parked at once (each holds a connection
	// and a file descriptor). Default 10,000; beyond it, 503 with Retry-After.
	MaxWaiting int
	// RatePerIP is the sustained requests per second one client (IPv4 address
	// or IPv6 /64) may make to
	// /v1/ (token bucket of RateBurst). Default 5; negative disables the limit.
	// Over it: 429 with Retry-After. Peers behind one NAT share a bucket.
	RatePerIP float64
	// RateBurst is the bucket size for RatePerIP. Default 20.
	RateBurst int
	// PollWait is how long one long-poll waits for the other peer before the
	// server answers 202 (post again). Default 25 s, under the 30 s idle
	// timeout of common proxies and NATs.
	PollWait time.Duration
	// RoomTTL is the longest a room lives. When it runs out, parked peers get
	// 410 and the room is dropped (clients then open a fresh one). Default 10
	// minutes. Independently, a peer that stops polling is dropped after
	// PollWait, and a room is freed as soon as both peers have their answer.
	RoomTTL time.Duration
	// HTTP server timeouts used by Serve and ListenAndServe (slowloris
	// protection): ReadHeaderTimeout default 5 s; ReadTimeout (whole request,
	// before a long-poll starts waiting) default 10 s; WriteTimeout default
	// PollWait + 10 s; IdleTimeout (keep-alive) default 60 s.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes caps request headers. Default 8 KiB (431 beyond).
	MaxHeaderBytes int
	// ShutdownTimeout bounds how long Serve waits for in-flight requests after
	// its context ends. Default 10 s.
	ShutdownTimeout time.Duration
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
}

func (c *ServerConfig) setDefaults() {
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 8 << 10
	}
	if c.MaxCandidates <= 0 {
		c.MaxCandidates = DefaultMaxCandidates
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = 50_000
	}
	if c.MaxWaiting <= 0 {
		c.MaxWaiting = 10_000
	}
	if c.RatePerIP == 0 {
		c.RatePerIP = 5
	}
	if c.RateBurst <= 0 {
		c.RateBurst = 20
	}
	def(&c.PollWait, 25*time.Second)
	def(&c.RoomTTL, 10*time.Minute)
	def(&c.ReadHeaderTimeout, 5*time.Second)
	def(&c.ReadTimeout, 10*time.Second)
	def(&c.WriteTimeout, c.PollWait+10*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.ShutdownTimeout, 10*time.Second)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 8 << 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is the signalling server: an http.Handler for the /v1/ API,
// /healthz and /metrics, and a STUN responder (ServeSTUN). Rooms live in
// memory. It is safe for concurrent use.
type Server struct {
	cfg      ServerConfig
	log      *slog.Logger
	metrics  *metrics
	limiter  *ipLimiter
	stunRate *ipLimiter
	promHTTP http.Handler

	mu      sync.Mutex
	rooms   map[string]*room
	waiting int  // parked polls
	closed  bool // Close was called: refuse joins
}

// NewServer returns a Server with cfg's limits (zero fields take defaults).
func NewServer(cfg ServerConfig) *Server {
	cfg.setDefaults()
	m := newMetrics()
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  m,
		limiter:  newIPLimiter(cfg.RatePerIP, cfg.RateBurst),
		stunRate: newIPLimiter(cfg.RatePerIP, cfg.RateBurst),
		promHTTP: promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}),
		rooms:    make(map[string]*room),
	}
}

// room is a meeting place for two peers. peers[0] came first.
type room struct {
	id     string
	peers  [2]*peer
	n      int
	expiry *time.Timer // RoomTTL
}

// peer is one side of a room.
type peer struct {
	offer    Offer
	answer   []byte // JSON sent to this peer once the room is full
	answered bool   // answer handed to this peer's poll
	poll     *poll  // parked long-poll, nil between polls
	stale    *time.Timer
}

// poll is one parked long-poll. Its answer goes either straight to a
// hijacked connection (conn) or, when hijacking is not possible or not done
// yet, through done to the handler goroutine.
type poll struct {
	conn  net.Conn   // set under Server.mu once hijacked
	done  chan reply // buffered; exactly one send
	timer *time.Timer
	room  *room
	peer  *peer
}

// reply is a response prepared under s.mu and written outside it.
type reply struct {
	status     int
	body       []byte
	retryAfter int // seconds; 0: no Retry-After header
}

func (rm *room) other(p *peer) *peer {
	if rm.peers[0] == p {
		return rm.peers[1]
	}
	return rm.peers[0]
}

func (rm *room) find(peerID string) *peer {
	for _, p := range rm.peers[:rm.n] {
		if p.offer.PeerID == peerID {
			return p
		}
	}
	return nil
}

func (rm *room) remove(p *peer) {
	if rm.peers[0] == p {
		rm.peers[0] = rm.peers[1]
	}
	rm.peers[1] = nil
	rm.n--
}

// ServeHTTP serves:
//
//	POST /v1/rooms/{room}  join or re-poll a room (see the package README)
//	GET  /healthz          200 {"status":"ok"}
//	GET  /metrics          Prometheus text format
//
// Every error is a JSON body {"error": "..."} with a 4xx/5xx status.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch path := r.URL.Path; {
	case path == "/healthz":
		if allowMethods(w, r, "GET", "HEAD") {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, `{"status":"ok"}`+"\n")
		}
	case path == "/metrics":
		if allowMethods(w, r, "GET", "HEAD") {
			s.promHTTP.ServeHTTP(w, r)
		}
	case strings.HasPrefix(path, "/v1/rooms/"):
		if allowMethods(w, r, "POST") {
			s.join(w, r, strings.TrimPrefix(path, "/v1/rooms/"))
		}
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+path, 0)
	}
}

func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+strings.Join(methods, " or "), 0)
	return false
}

func writeError(w http.ResponseWriter, status int, msg string, retryAfter int) {
	writeReply(w, errorReply(status, msg, retryAfter))
}

func errorReply(status int, msg string, retryAfter int) reply {
	return reply{status: status, body: mustJSON(errorBody{Error: msg}), retryAfter: retryAfter}
}

var waitingReply = reply{status: http.StatusAccepted, body: mustJSON(waiting{Status: "waiting"})}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

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

func (s *Server) refuse(w http.ResponseWriter, reason string, status int, msg string, retryAfter int) {
	s.metrics.refusals.WithLabelValues(reason).Inc()
	s.log.Debug("signal: refused", "reason", reason, "status", status, "msg", msg)
	writeError(w, status, msg, retryAfter)
}

// join handles POST /v1/rooms/{room}.
func (s *Server) join(w http.ResponseWriter, r *http.Request, roomID string) {
	if ip, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		if ok, wait := s.limiter.allow(ip.Addr(), time.Now()); !ok {
			s.refuse(w, refuseRateLimited, http.StatusTooManyRequests, "rate limit exceeded; slow down", int(wait/time.Second)+1)
			return
		}
	}
	if !isLowerHex(roomID, 64) {
		s.refuse(w, refuseBadRequest, http.StatusBadRequest, "invalid room id: want 64 lowercase hex characters", 0)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.refuse(w, refuseBadRequest, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodyBytes), 0)
		} else {
			s.refuse(w, refuseBadRequest, http.StatusBadRequest, "reading request body: "+err.Error(), 0)
		}
		return
	}
	offer, err := decodeOffer(body, s.cfg.MaxCandidates)
	if err != nil {
		s.refuse(w, refuseBadRequest, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "signal: "), 0)
		return
	}

	pl, rp, reason, ds := s.enter(roomID, offer)
	for _, d := range ds {
		s.deliver(d.poll, d.reply)
	}
	if pl == nil {
		if reason != "" {
			s.metrics.refusals.WithLabelValues(reason).Inc()
		}
		writeReply(w, rp)
		return
	}
	s.park(w, r, pl)
}

// delivery is an answer for a parked poll, found under s.mu and written after.
type delivery struct {
	poll  *poll
	reply reply
}

// enter applies one join or re-poll to the room state. It returns either a
// poll to park, or a reply to send now (with the refusal reason, if it is
// one); and maybe an answer for the other peer's parked poll.
func (s *Server) enter(roomID string, offer Offer) (pl *poll, rp reply, reason string, ds []*delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errorReply(http.StatusServiceUnavailable, "server shutting down; retry", 1), refuseShutdown, nil
	}
	rm := s.rooms[roomID]
	if rm == nil {
		if len(s.rooms) >= s.cfg.MaxRooms {
			return nil, errorReply(http.StatusServiceUnavailable, "too many rooms; retry later", 5), refuseMaxRooms, nil
		}
		rm = &room{id: roomID}
		rm.expiry = time.AfterFunc(s.cfg.RoomTTL, func() { s.expire(rm) })
		s.rooms[roomID] = rm
		s.metrics.rooms.Set(float64(len(s.rooms)))
	}
	p := rm.find(offer.PeerID)
	if p == nil {
		if rm.n == 1 && !rm.peers[0].alive() { // its client hung up: take its place
			ds = append(ds, s.removePeer(rm, rm.peers[0])...)
		}
		if rm.n == 2 {
			return nil, errorReply(http.StatusConflict, "room full: two peers are already meeting with this code", 0), refuseRoomFull, ds
		}
		p = &peer{offer: offer}
		rm.peers[rm.n] = p
		rm.n++
		if rm.n == 2 {
			s.meet(rm)
		}
	} else if p.answer == nil {
		p.offer = offer // a re-poll may bring fresher candidates
	}
	if p.stale != nil {
		p.stale.Stop()
		p.stale = nil
	}
	if p.poll != nil { // a duplicate poll supersedes the old one
		ds = append(ds, s.claim(p, waitingReply))
	}
	if p.answer != nil {
		p.answered = true
		rp = reply{status: http.StatusOK, body: p.answer}
		if o := rm.other(p); o.poll != nil {
			ds = append(ds, s.claim(o, reply{status: http.StatusOK, body: o.answer}))
			o.answered = true
		}
		if rm.other(p).answered {
			s.deleteRoom(rm)
		}
		return nil, rp, "", ds
	}
	if s.waiting >= s.cfg.MaxWaiting {
		s.dropPeer(rm, p)
		return nil, errorReply(http.StatusServiceUnavailable, "too many waiting peers; retry later", 5), refuseMaxWaiting, ds
	}
	pl = &poll{done: make(chan reply, 1), room: rm, peer: p}
	pl.timer = time.AfterFunc(s.cfg.PollWait, func() { s.pollTimeout(rm, p, pl) })
	p.poll = pl
	s.waiting++
	s.metrics.waiting.Set(float64(s.waiting))
	return pl, reply{}, "", ds
}

// meet fills both peers' answers once the second peer arrives. The lower peer
// ID dials; both clients compute the same rule themselves.
func (s *Server) meet(rm *room) {
	a, b := rm.peers[0], rm.peers[1]
	a.answer = encodeAnswer(rm.id, b.offer, a.offer.PeerID < b.offer.PeerID)
	b.answer = encodeAnswer(rm.id, a.offer, b.offer.PeerID < a.offer.PeerID)
	s.metrics.meets.Inc()
	s.log.Debug("signal: meet", "room", rm.id)
}

func encodeAnswer(roomID string, peer Offer, dialer bool) []byte {
	return mustJSON(answer{Room: roomID, Peer: peer, Dialer: dialer})
}

// claim takes p's parked poll out of the state (s.mu held); the caller
// delivers rp to it after unlocking.
func (s *Server) claim(p *peer, rp reply) *delivery {
	pl := p.poll
	p.poll = nil
	pl.timer.Stop()
	s.waiting--
	s.metrics.waiting.Set(float64(s.waiting))
	return &delivery{poll: pl, reply: rp}
}

// removePeer takes a peer that left out of its room (s.mu held). A parked
// poll of that peer is claimed; the caller delivers (and so closes) it.
func (s *Server) removePeer(rm *room, p *peer) []*delivery {
	var ds []*delivery
	if p.poll != nil {
		ds = append(ds, s.claim(p, errorReply(http.StatusGone, "peer left", 0)))
	}
	if p.stale != nil {
		p.stale.Stop()
	}
	rm.remove(p)
	return ds
}

// dropPeer is removePeer, freeing the room if that left it empty.
func (s *Server) dropPeer(rm *room, p *peer) []*delivery {
	ds := s.removePeer(rm, p)
	if rm.n == 0 {
		s.deleteRoom(rm)
	}
	return ds
}

func (s *Server) deleteRoom(rm *room) {
	rm.expiry.Stop()
	for _, p := range rm.peers[:rm.n] {
		if p.stale != nil {
			p.stale.Stop()
		}
	}
	if s.rooms[rm.id] == rm {
		delete(s.rooms, rm.id)
		s.metrics.rooms.Set(float64(len(s.rooms)))
	}
}

// pollTimeout answers a poll that waited PollWait with 202. The peer must
// post again within another PollWait, or it is dropped.
func (s *Server) pollTimeout(rm *room, p *peer, pl *poll) {
	s.mu.Lock()
	if p.poll != pl {
		s.mu.Unlock()
		return
	}
	d := s.claim(p, waitingReply)
	p.stale = time.AfterFunc(s.cfg.PollWait, func() { s.dropStale(rm, p) })
	s.mu.Unlock()
	s.metrics.pollTimeouts.Inc()
	s.deliver(d.poll, d.reply)
}

// dropStale removes a peer that stopped polling. If the room had met, the
// other peer already has its answer, so the whole room goes.
func (s *Server) dropStale(rm *room, p *peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[rm.id] != rm || p.poll != nil || rm.find(p.offer.PeerID) != p {
		return
	}
	if p.answer != nil {
		s.deleteRoom(rm)
		return
	}
	s.dropPeer(rm, p)
}

// expire drops a room whose TTL ran out; parked peers get 410.
func (s *Server) expire(rm *room) {
	s.mu.Lock()
	if s.rooms[rm.id] != rm {
		s.mu.Unlock()
		return
	}
	var ds []*delivery
	for _, p := range rm.peers[:rm.n] {
		if p.poll != nil {
			ds = append(ds, s.claim(p, errorReply(http.StatusGone, "room expired", 0)))
		}
	}
	s.deleteRoom(rm)
	s.mu.Unlock()
	s.metrics.expired.Inc()
	for _, d := range ds {
		s.deliver(d.poll, d.reply)
	}
}

// Close refuses further joins and answers every parked long-poll with a
// retryable 503, so clients move on (to a restarted server) at once. Serve
// calls it when its context ends; a program that mounts the Server in its own
// http.Server should call it from http.Server.RegisterOnShutdown, because
// hijacked long-polls are invisible to http.Server.Shutdown.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var ds []*delivery
	for _, rm := range s.rooms {
		for _, p := range rm.peers[:rm.n] {
			if p.poll != nil {
				ds = append(ds, s.claim(p, errorReply(http.StatusServiceUnavailable, "server shutting down; retry", 1)))
			}
		}
		s.deleteRoom(rm)
	}
	s.mu.Unlock()
	for _, d := range ds {
		s.deliver(d.poll, d.reply)
	}
	return nil
}
