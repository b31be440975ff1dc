package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/transport/utp"
)

// Defaults for the zero values of Config.
const (
	DefaultLocalAddr     = ":0"
	DefaultSTUNPort      = "3478"
	DefaultGatherTimeout = 5 * time.Second
	DefaultServerTimeout = 5 * time.Second
	DefaultPunchTimeout  = 15 * time.Second
	DefaultStreamTimeout = 10 * time.Second
	DefaultRelayTimeout  = 4 * time.Second
	// DefaultRefreshInterval is how often a host asks STUN again (Config.RefreshInterval): under the 30 s that
	// common NATs keep an idle UDP mapping.
	DefaultRefreshInterval = 25 * time.Second
)

// Config says where and how to meet. Only SignalURL and Code are required.
type Config struct {
	// SignalURL is the base URL of the signalling server, e.g. "http://signal.example:8080".
	SignalURL string
	// STUNAddr is the STUN responder as host:port; empty means the signalling server's host, port 3478.
	STUNAddr string
	// Code is the code the host and its guests share, e.g. "7-amber-otter" (see signal.ParseCode): a guest must
	// have it; a Host picks one when it is empty. Only its nameplate (the number) is sent to the signalling server;
	// the words are the password of the PAKE the peers run through it.
	Code string
	// LocalAddr is the local UDP address to bind, default ":0". An IPv6 literal binds IPv6, anything else IPv4.
	LocalAddr string

	// Timeout bounds the whole meeting; zero means only the per-step timeouts and ctx apply.
	Timeout time.Duration
	// GatherTimeout bounds the STUN query; when it expires Meet goes on with the host candidates alone.
	GatherTimeout time.Duration
	// ServerTimeout bounds the first contact with the signalling server, so an unreachable server fails fast.
	ServerTimeout time.Duration
	// PeerTimeout bounds a guest's wait for the host and their meeting; zero means wait until ctx ends.
	PeerTimeout time.Duration
	// GuestTimeout bounds the host's side of one guest's meeting; default signal.DefaultGuestTimeout.
	GuestTimeout time.Duration
	// PunchTimeout bounds punching once the peer's candidates are known.
	PunchTimeout time.Duration
	// StreamTimeout bounds opening (or accepting) the first stream over the punched path.
	StreamTimeout time.Duration
	// RelayTimeout bounds making the TURN allocation (over UDP, then TCP); a guest's meeting waits for it.
	RelayTimeout time.Duration

	// Logger receives debug logs of each step; nil discards them.
	Logger *slog.Logger
	// Transport configures the UDP/uTP transport; a nil Transport.Logger inherits Logger.
	Transport utp.Config
	// Ciphers are the ciphers this peer offers to seal its paths, best first; nil means utp.Ciphers() (AES-256-GCM
	// first where the CPU has AES-GCM instructions, ChaCha20-Poly1305 otherwise). The offers travel sealed in the
	// meeting, and each path uses the host's best that the guest offered too (Report.Cipher).
	Ciphers []utp.Cipher
	// HTTPClient talks to the signalling server; nil means a client with sane timeouts.
	HTTPClient *http.Client

	// MaxFailures (host only) is how many guests may fail key confirmation before the code is retired and a new one
	// picked; default signal.DefaultMaxFailures. A guesser gets no more guesses than this per code.
	MaxFailures int
	// RefreshInterval (host only) is how often the host asks STUN for its public address again while it hosts, which
	// also keeps its NAT mapping open between guests; a changed address goes to the guests that come after. Default
	// DefaultRefreshInterval; negative disables it.
	RefreshInterval time.Duration
	// NoRelay: never use the TURN relay the signalling server offers; peers whose NATs defeat punching then cannot
	// connect.
	NoRelay bool
	// OnNewCode (host only), if set, is called with the host's new code when the old one was retired (after
	// MaxFailures failed confirmations) or, for a picked code, when its nameplate was in use. Guests need the new
	// code from then on.
	OnNewCode func(code string, reason error)
}

// Role says which side of a meeting a peer was.
type Role string

// The roles.
const (
	RoleHost  Role = "host"  // Host: met any number of guests, each on its own path
	RoleGuest Role = "guest" // Meet: met the host, dials the uTP connections
)

// Report says how a meeting went.
type Report struct {
	Role      Role   // host or guest
	Nameplate int    // the code's nameplate: all the signalling server learnt of the code
	Meeting   string // the meeting's ID on the signalling server
	// Verifier is a short string derived from the session key, e.g. "brave-otter-quiet-finch": both sides show the
	// same one, unless someone sat in the middle. People who want to be sure compare it aloud.
	Verifier string
	// Cipher seals every datagram of the path: the host's best cipher that the guest offered too.
	Cipher utp.Cipher

	LocalAddr      netip.AddrPort  // the bound UDP socket
	Reflexive      netip.AddrPort  // our address as the STUN server saw it; invalid when STUN failed
	Relay          netip.AddrPort  // our TURN allocation's relayed address; invalid without one
	STUNError      string          // why STUN failed, empty when it worked
	Candidates     []utp.Candidate // what we sent to the peer
	PeerCandidates []utp.Candidate // what the peer sent us
	LocalCandidate utp.Candidate   // the winning pair, our side
	PeerCandidate  utp.Candidate   // the winning pair, the peer's side
	RemoteAddr     netip.AddrPort  // where the peer's packets come from
	Direct         bool            // the winning pair is host to host: no NAT rewrote addresses on the path
	Dialer         bool            // this side dialled the uTP connections and opened the first stream (the guest)
	RTT            time.Duration   // round-trip time of the path, measured while punching
	// NAT is what STUN told of our NAT: the address each of the STUN server's two addresses saw, and so how it maps
	// (utp.MappingPerDestination: a hard NAT, punched with many ports at once).
	NAT utp.NATReport
	// Route is the route that carried the path when the first stream opened: a relay or a direct pair. The path
	// may move later (Session.Route, Session.RouteChanged).
	Route Route

	Gather time.Duration // bind, interface addresses, STUN (for a host: once, when it started)
	Signal time.Duration // the meeting: PAKE, key confirmation, candidates (a guest: waiting for the host too)
	Punch  time.Duration // until a path worked both ways
	Stream time.Duration // until the first stream was open
	Total  time.Duration // a guest: from Meet to the open stream; a host: from the guest's arrival
}

// Session is a meeting that succeeded: a punched path to the peer and its first stream.
type Session struct {
	transport     *utp.Transport
	ownsTransport bool // a guest's own socket; a host's sessions share the host's
	path          *utp.Path
	stream        net.Conn
	report        Report
	closeOnce     sync.Once
	closeErr      error
}

// Stream returns the first stream, already open. Wrap it in a symsock.Socket to speak HTTP; which peer is the client
// is decided by whoever writes a request first.
func (s *Session) Stream() net.Conn { return s.stream }

// Report says how the meeting went.
func (s *Session) Report() Report { return s.report }

// OpenStream opens a further stream to the peer; the peer receives it from AcceptStream. Either side may call it.
func (s *Session) OpenStream(ctx context.Context) (net.Conn, error) { return s.path.OpenStream(ctx) }

// AcceptStream returns the next stream the peer opened with OpenStream.
func (s *Session) AcceptStream(ctx context.Context) (net.Conn, error) {
	return s.path.AcceptStream(ctx)
}

// Done is closed when the path to the peer ends: either side closed it, or nothing came from the peer for
// Transport.DeadPathTimeout. Err then says which.
func (s *Session) Done() <-chan struct{} { return s.path.Done() }

// Err is nil while the path lives, then why it ended (an error wrapping utp.ErrPathClosed or utp.ErrPathDead, say).
func (s *Session) Err() error { return s.path.Err() }

// Close closes the first stream and the path (and, for a guest, its UDP socket; a host's socket stays open for its
// other guests). Streams from OpenStream and AcceptStream fail once the path is closed.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.stream.Close(), s.path.Close())
		if s.ownsTransport {
			s.closeErr = errors.Join(s.closeErr, s.transport.Close())
		}
	})
	return s.closeErr
}

// Meet meets the host of cfg.Code as a guest (the host runs Host with the same code) and returns the session once
// the first stream is open. Errors are *Error values: errors.Is matches ErrSignalUnreachable, ErrPeerNeverCame,
// ErrWrongCode, ErrPunchFailed and the others, and the underlying cause. Cancelling ctx aborts any step.
func Meet(ctx context.Context, cfg Config) (*Session, error) {
	code, err := cfg.setDefaults(true)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	log := cfg.Logger
	start := time.Now()
	g, err := gather(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			g.tr.Close()
		}
	}()
	rep := g.report
	rep.Role = RoleGuest
	rep.Gather = time.Since(start)

	t := time.Now()
	jctx, cancel := ctx, context.CancelFunc(func() {})
	if cfg.PeerTimeout > 0 {
		jctx, cancel = context.WithTimeout(ctx, cfg.PeerTimeout)
	}
	join := signal.JoinConfig{Candidates: toSignal(rep.Candidates), Ciphers: cipherNames(cfg.Ciphers)}
	var relay *guestRelay // set by Gather
	if !cfg.NoRelay {
		join.Gather = func(ctx context.Context, info *signal.RelayInfo) ([]signal.Candidate, error) {
			if info == nil {
				return nil, nil
			}
			got := time.Now()
			r, err := allocateRelay(ctx, &cfg, g.tr, info, rep.STUNError == "")
			if err != nil {
				log.Warn("cannot use the relay; going on without it", "err", err)
				return nil, nil
			}
			relay = &guestRelay{cfg: &cfg, tr: g.tr, udpWorks: rep.STUNError == "", relay: r, info: info, got: got}
			rep.Relay = r.Addr()
			rep.Candidates = append(rep.Candidates, r.Candidate())
			return toSignal([]utp.Candidate{r.Candidate()}), nil
		}
	}
	m, err := cfg.signalClient().JoinWith(jctx, code, join)
	cancel()
	if err != nil {
		return nil, signalError(ctx, err, false)
	}
	rep.Signal = time.Since(t)
	log.Debug("met the host", "nameplate", code.Nameplate, "meeting", m.ID, "took", rep.Signal)
	sess, err := connect(ctx, &cfg, g.tr, m, rep)
	if err != nil {
		return nil, err
	}
	sess.report.Total = time.Since(start)
	sess.ownsTransport = true
	ok = true
	if relay != nil && relay.info.Renewal != "" {
		relay.client = cfg.signalClient()
		rctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-sess.Done()
			cancel()
		}()
		go relay.keep(rctx)
	}
	return sess, nil
}

// connect punches the path to the other side of meeting m over tr and opens the first stream (the guest, which
// dials, opens it; the host accepts it).
func connect(ctx context.Context, cfg *Config, tr *utp.Transport, m *signal.Meeting, rep Report) (*Session, error) {
	log := cfg.Logger
	rep.Nameplate = m.Code.Nameplate
	rep.Meeting = m.ID
	rep.Verifier = m.Verifier
	rep.Cipher = utp.Cipher(m.Cipher)
	rep.Dialer = m.Dialer
	rep.PeerCandidates = fromSignal(m.Peer)

	t := time.Now()
	pctx, cancel := context.WithTimeout(ctx, cfg.PunchTimeout)
	path, err := tr.Connect(pctx, utp.Peer{Key: m.Key, Candidates: rep.PeerCandidates, Dialer: m.Dialer, Cipher: rep.Cipher})
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, &Error{Step: StepPunch, Err: ctx.Err()}
		}
		return nil, &Error{Step: StepPunch, Reason: ErrPunchFailed, Err: err}
	}
	rep.Punch = time.Since(t)
	rep.RemoteAddr = path.RemoteAddr()
	rep.LocalCandidate, rep.PeerCandidate = path.Pair()
	rep.Direct = rep.LocalCandidate.Kind == utp.CandidateHost && rep.PeerCandidate.Kind == utp.CandidateHost
	rep.RTT = path.RTT()
	rep.Route = path.Route()
	log.Debug("punched", "route", DescribeRoute(rep.Route), "cipher", rep.Cipher, "remote", rep.RemoteAddr, "local_candidate", rep.LocalCandidate,
		"peer_candidate", rep.PeerCandidate, "rtt", rep.RTT, "took", rep.Punch)

	t = time.Now()
	octx, cancel := context.WithTimeout(ctx, cfg.StreamTimeout)
	var stream net.Conn
	if m.Dialer {
		stream, err = path.OpenStream(octx)
	} else {
		stream, err = path.AcceptStream(octx)
	}
	cancel()
	if err != nil {
		path.Close()
		if ctx.Err() != nil {
			return nil, &Error{Step: StepStream, Err: ctx.Err()}
		}
		return nil, &Error{Step: StepStream, Reason: ErrStreamFailed, Err: err}
	}
	rep.Stream = time.Since(t)
	rep.Route = path.Route() // the path may have moved to a better route meanwhile
	log.Debug("first stream open", "took", rep.Stream)
	return &Session{transport: tr, path: path, stream: stream, report: rep}, nil
}

// directCandidates lists what we offer besides a relay: our server-reflexive address first (across the internet it
// is the one that works), one per STUN address under a NAT that maps per destination (they show the peer how the
// NAT allocates ports), then our interfaces' addresses that the peer may use (offerable), at most
// maxDirectCandidates. The candidates STUN saw us at say how our NAT maps.
func directCandidates(host []utp.Candidate, nat utp.NATReport) []utp.Candidate {
	host = offerable(host, nat.Reflexive)
	seen := nat.Observed
	if nat.Mapping != utp.MappingPerDestination {
		seen = []netip.AddrPort{nat.Reflexive}
	}
	var out []utp.Candidate
	for _, a := range seen {
		if !a.IsValid() || hasAddr(out, a) {
			continue
		}
		if i := slices.IndexFunc(host, func(c utp.Candidate) bool { return c.Addr == a }); i >= 0 {
			host[i].Mapping = nat.Mapping // no NAT: STUN saw one of our interfaces
			continue
		}
		out = append(out, utp.Candidate{Kind: utp.CandidateSrflx, Addr: a, Mapping: nat.Mapping})
	}
	out = append(out, host...)
	return out[:min(len(out), maxDirectCandidates)]
}

// maxDirectCandidates leaves room for a relay candidate among the candidates the signalling server accepts.
const maxDirectCandidates = signal.DefaultMaxCandidates - 1

// gathered is a bound transport and what gathering learnt.
type gathered struct {
	tr     *utp.Transport
	report Report // LocalAddr, Reflexive, STUNError, Candidates
}

// gather binds the UDP socket, lists its addresses and asks STUN for the public one; meanwhile it checks that the
// signalling server answers, so that a wrong URL fails in milliseconds rather than after the STUN timeout or the
// retries of a long-poll.
func gather(ctx context.Context, cfg *Config) (*gathered, error) {
	log := cfg.Logger
	network := "udp4"
	if host, _, err := net.SplitHostPort(cfg.LocalAddr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
			network = "udp6"
		}
	}
	tr, err := utp.Listen(network, cfg.LocalAddr, cfg.Transport)
	if err != nil {
		return nil, &Error{Step: StepGather, Reason: ErrGatherFailed, Err: err}
	}
	ok := false
	defer func() {
		if !ok {
			tr.Close()
		}
	}()
	rep := Report{LocalAddr: tr.LocalAddr().AddrPort()}

	gctx, cancelGather := context.WithCancel(ctx)
	defer cancelGather()
	probe := make(chan error, 1)
	go func() { probe <- cfg.probeServer(gctx) }()
	type stunResult struct {
		nat utp.NATReport
		err error
	}
	stun := make(chan stunResult, 1)
	go func() {
		sctx, cancel := context.WithTimeout(gctx, cfg.GatherTimeout)
		defer cancel()
		n, err := tr.DiscoverNAT(sctx, cfg.STUNAddr)
		stun <- stunResult{n, err}
	}()
	var sr stunResult
	for probe != nil || stun != nil {
		select {
		case err := <-probe:
			if err != nil {
				return nil, signalError(ctx, err, true)
			}
			probe = nil
		case sr = <-stun:
			stun = nil
		}
	}
	if sr.err != nil {
		if ctx.Err() != nil {
			return nil, &Error{Step: StepGather, Err: ctx.Err()}
		}
		rep.STUNError = sr.err.Error()
		log.Warn("STUN failed; going on with host candidates only", "stun", cfg.STUNAddr, "err", sr.err)
	} else {
		rep.Reflexive, rep.NAT = sr.nat.Reflexive, sr.nat
	}
	rep.Candidates = directCandidates(tr.HostCandidates(), rep.NAT)
	if len(rep.Candidates) == 0 {
		return nil, &Error{Step: StepGather, Reason: ErrGatherFailed, Err: fmt.Errorf("no interface address and STUN failed: %s", rep.STUNError)}
	}
	log.Debug("gathered candidates", "local", rep.LocalAddr, "candidates", rep.Candidates)
	ok = true
	return &gathered{tr: tr, report: rep}, nil
}

func (cfg *Config) signalClient() *signal.Client {
	return (&signal.ClientConfig{HTTPClient: cfg.HTTPClient, Logger: cfg.Logger}).NewClient(cfg.SignalURL)
}

// setDefaults fills in the defaults and parses the code, which a guest must have.
func (cfg *Config) setDefaults(needCode bool) (signal.Code, error) {
	var code signal.Code
	if cfg.Code == "" && needCode {
		return code, errors.New("rendezvous: Config.Code is empty")
	}
	if cfg.Code != "" {
		var err error
		if code, err = signal.ParseCode(cfg.Code); err != nil {
			return code, fmt.Errorf("rendezvous: Config.Code: %w", err)
		}
	}
	u, err := url.Parse(cfg.SignalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return code, fmt.Errorf("rendezvous: signalling URL %q is not an http:// or https:// URL", cfg.SignalURL)
	}
	cfg.SignalURL = strings.TrimSuffix(cfg.SignalURL, "/")
	if cfg.STUNAddr == "" {
		cfg.STUNAddr = net.JoinHostPort(u.Hostname(), DefaultSTUNPort)
	}
	if cfg.LocalAddr == "" {
		cfg.LocalAddr = DefaultLocalAddr
	}
	if len(cfg.Ciphers) == 0 {
		cfg.Ciphers = utp.Ciphers()
	}
	for _, c := range cfg.Ciphers {
		if err := c.Check(); err != nil {
			return code, fmt.Errorf("rendezvous: Config.Ciphers: %w", err)
		}
	}
	setDefault(&cfg.GatherTimeout, DefaultGatherTimeout)
	setDefault(&cfg.ServerTimeout, DefaultServerTimeout)
	setDefault(&cfg.PunchTimeout, DefaultPunchTimeout)
	setDefault(&cfg.StreamTimeout, DefaultStreamTimeout)
	setDefault(&cfg.RelayTimeout, DefaultRelayTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport.Logger == nil {
		cfg.Transport.Logger = cfg.Logger.With("component", "utp")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = defaultHTTPClient
	}
	return code, nil
}

// defaultHTTPClient is shared by all meetings, so that a program meeting peer after peer (p2phttp serve) reuses its
// connections to the signalling server instead of leaving one idle pool per meeting. Each request is bounded by its
// context: the probe by ServerTimeout, long-polls by the signal client.
var defaultHTTPClient = &http.Client{Transport: &http.Transport{
	Proxy:               http.ProxyFromEnvironment,
	DialContext:         (&net.Dialer{Timeout: DefaultServerTimeout}).DialContext,
	TLSHandshakeTimeout: DefaultServerTimeout,
	IdleConnTimeout:     90 * time.Second,
	MaxIdleConnsPerHost: 4,
}}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// probeServer asks the signalling server for its health, bounded by ServerTimeout.
func (cfg *Config) probeServer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.ServerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.SignalURL+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/healthz answered %s, not 200 OK: not a p2phttp signalling server?", cfg.SignalURL, resp.Status)
	}
	return nil
}

// signalError says why the signal step failed: our caller gave up, the server is unreachable or refused us, or the
// peer never came before the deadline. probing is true for the health probe, where any failure means unreachable.
func signalError(ctx context.Context, err error, probing bool) error {
	switch {
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &Error{Step: StepSignal, Err: ctx.Err()}
	case probing:
		return &Error{Step: StepSignal, Reason: ErrSignalUnreachable, Err: err}
	case errors.Is(err, signal.ErrConfirmFailed):
		return &Error{Step: StepSignal, Reason: ErrWrongCode, Err: err}
	case errors.Is(err, signal.ErrPeerLeft):
		return &Error{Step: StepSignal, Reason: ErrPeerLeft, Err: err}
	case errors.Is(err, signal.ErrRejected), errors.Is(err, signal.ErrNameplateInUse):
		return &Error{Step: StepSignal, Reason: ErrSignalRefused, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Step: StepSignal, Reason: ErrPeerNeverCame, Err: err}
	case isUnreachable(err):
		return &Error{Step: StepSignal, Reason: ErrSignalUnreachable, Err: err}
	default:
		return &Error{Step: StepSignal, Err: err}
	}
}

func isUnreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns)
}

func hasAddr(cands []utp.Candidate, a netip.AddrPort) bool {
	for _, c := range cands {
		if c.Addr == a {
			return true
		}
	}
	return false
}

// cipherNames is cs as the meeting messages name them.
func cipherNames(cs []utp.Cipher) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

func toSignal(cands []utp.Candidate) []signal.Candidate {
	out := make([]signal.Candidate, len(cands))
	for i, c := range cands {
		out[i] = signal.Candidate{Kind: string(c.Kind), Addr: c.Addr, Mapping: string(c.Mapping)}
	}
	return out
}

func fromSignal(cands []signal.Candidate) []utp.Candidate {
	out := make([]utp.Candidate, len(cands))
	for i, c := range cands {
		out[i] = utp.Candidate{Kind: utp.CandidateKind(c.Kind), Addr: c.Addr, Mapping: utp.NATMapping(c.Mapping)}
	}
	return out
}
