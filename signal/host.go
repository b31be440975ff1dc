package signal

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Defaults of HostConfig.
const (
	DefaultMaxFailures  = 3
	DefaultGuestTimeout = 30 * time.Second
	DefaultMaxMeetings  = 64
)

// ErrHostClosed is what Accept returns once the Host is closed.
var ErrHostClosed = errors.New("signal: host closed")

// ErrCodeRetired is the reason HostConfig.OnNewCode gives when failed confirmations retired a code.
var ErrCodeRetired = errors.New("signal: too many failed key confirmations; the code was retired")

// HostConfig says how a Host meets guests. Zero fields take the defaults.
type HostConfig struct {
	// Code is the code guests use. The zero Code makes the Host pick one (NewCode's form), and pick another
	// nameplate when the server says the one it picked is in use; a code given here must be free.
	Code Code
	// Candidates are the host's addresses, sent (encrypted) to every guest. Required.
	Candidates []Candidate
	// Ciphers are the path ciphers the host can use, best first (transport/utp's names, e.g. utp.Ciphers()),
	// sent (encrypted) to every guest: each meeting's Cipher is the first of them the guest offers too. Empty means
	// DefaultCipher alone.
	Ciphers []string
	// MaxFailures is how many meetings may fail their key confirmation (a guest with a wrong code, or one that left
	// after the host's confirmation, which is all a guesser needs) before the code is retired: the Host releases
	// the nameplate, picks a new code, one word longer than the last, and calls OnNewCode. No more than this many
	// guesses are ever answered at once, so a guesser gets at most MaxFailures guesses per code, and the longer codes
	// keep its odds over all codes close to those against the first. Default DefaultMaxFailures.
	MaxFailures int
	// GuestTimeout bounds one guest's meeting, from its arrival to the confirmed keys. Default DefaultGuestTimeout.
	GuestTimeout time.Duration
	// MaxMeetings bounds the guests being met at once; more wait on the server. Default DefaultMaxMeetings.
	MaxMeetings int
	// OnNewCode, if set, is called (from the Host's goroutine) with the Host's new code and why it changed:
	// ErrCodeRetired, or ErrNameplateInUse for a picked code whose nameplate another host held.
	OnNewCode func(code Code, reason error)
	// OnRelay, if set, is called (from the Host's goroutine) whenever the server hands the host new relay
	// credentials: with its first answer and with every later poll's, well before the last ones expire. It is not
	// called when the server runs no relay. It must not block for long: the host's next poll waits for it.
	OnRelay func(*RelayInfo)
}

// Host is the host side of a nameplate: it holds the nameplate on the server and meets every guest that comes, each
// in a meeting of its own with its own keys, several at once. Accept returns them as their meetings complete.
type Host struct {
	c      *Client
	cfg    HostConfig
	ctx    context.Context
	cancel context.CancelFunc
	met    chan *Meeting
	wg     sync.WaitGroup // the poll loop and every meeting
	done   chan struct{}  // closed when the poll loop ends

	// mu guards the fields below.
	mu         sync.Mutex
	peerID     string      // our bearer token for the nameplate's claim
	cands      []Candidate // sent to each guest
	code       Code
	picked     bool          // we picked code, so we may pick another when its nameplate is taken
	retired    int           // codes retired so far
	generation int           // bumped whenever the code changes
	failures   int           // failed confirmations of this generation
	guessing   int           // meetings of this generation that answered a guess not yet confirmed
	changed    chan struct{} // closed and replaced when failures, guessing or generation change
	seen       map[[sha256.Size]byte]struct{}
	err        error              // why the poll loop ended
	cancelPoll context.CancelFunc // ends the poll parked on the current nameplate
	relay      *RelayInfo         // the newest relay credentials the server gave; nil: none
}

// maxExtraWords caps how much longer than usual a code becomes after retirements.
const maxExtraWords = 4

// maxSeen bounds the replay filter: first messages remembered per code.
const maxSeen = 4096

// Host starts hosting: it claims the nameplate of cfg.Code (or of a code it picks) and waits for guests until ctx
// ends or Close is called. Call Accept to get the meetings.
func (c *Client) Host(ctx context.Context, cfg HostConfig) (*Host, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	if err := validateCandidates(cfg.Candidates, DefaultMaxCandidates); err != nil {
		return nil, fmt.Errorf("our candidates: %w", err)
	}
	var err error
	if cfg.Ciphers, err = ourCiphers(cfg.Ciphers); err != nil {
		return nil, err
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.GuestTimeout <= 0 {
		cfg.GuestTimeout = DefaultGuestTimeout
	}
	if cfg.MaxMeetings <= 0 {
		cfg.MaxMeetings = DefaultMaxMeetings
	}
	code, picked := cfg.Code, cfg.Code.Nameplate == 0
	if picked {
		code = newCode(999, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &Host{
		c: c, cfg: cfg, ctx: ctx, cancel: cancel,
		met: make(chan *Meeting), done: make(chan struct{}),
		peerID: NewPeerID(), cands: cfg.Candidates, code: code, changed: make(chan struct{}), seen: map[[sha256.Size]byte]struct{}{},
	}
	h.picked = picked
	h.wg.Add(1)
	go h.loop()
	return h, nil
}

// SetCandidates replaces the candidates sent to guests from now on (a host whose public address changed).
func (h *Host) SetCandidates(cands []Candidate) error {
	if err := validateCandidates(cands, DefaultMaxCandidates); err != nil {
		return fmt.Errorf("our candidates: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cands = append([]Candidate(nil), cands...)
	return nil
}

// Relay returns the newest relay credentials the server gave the host, or nil when it gave none (it runs no relay,
// or the host has not had an answer yet). Callers must not modify it.
func (h *Host) Relay() *RelayInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.relay
}

// gotRelay records the relay credentials of a poll's answer and tells OnRelay when they changed.
func (h *Host) gotRelay(r *RelayInfo) {
	if r == nil {
		return
	}
	h.mu.Lock()
	old := h.relay
	same := old != nil && old.Username == r.Username && old.Password == r.Password && slices.Equal(old.URLs, r.URLs)
	if !same {
		h.relay = r
	}
	h.mu.Unlock()
	if !same && h.cfg.OnRelay != nil {
		h.cfg.OnRelay(r)
	}
}

// Code is the code guests must use now; it changes when a code is retired.
func (h *Host) Code() Code {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.code
}

// Accept returns the next guest whose meeting completed. It fails with ErrHostClosed after Close, with the reason
// the Host stopped (e.g. ErrNameplateInUse) or with ctx's error.
func (h *Host) Accept(ctx context.Context) (*Meeting, error) {
	select {
	case m := <-h.met:
		return m, nil
	case <-h.done:
		h.mu.Lock()
		defer h.mu.Unlock()
		return nil, h.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops hosting: the nameplate is released at once, meetings in progress end, and Accept fails.
func (h *Host) Close() error {
	h.cancel()
	h.wg.Wait()
	return nil
}

// loop keeps a long-poll parked on the server while the Host lives, so guests find it; each poll returns the
// meetings of guests that arrived.
func (h *Host) loop() {
	defer h.wg.Done()
	defer close(h.done)
	err := h.poll()
	h.mu.Lock()
	code := h.code
	if h.ctx.Err() != nil {
		err = ErrHostClosed
	}
	h.err = err
	h.mu.Unlock()
	h.release(code)
}

func (h *Host) poll() error {
	sem := make(chan struct{}, h.cfg.MaxMeetings)
	taken := 0 // nameplates found in use, to widen the range we pick from
	var (
		code   Code
		gen    int
		peerID string
	)
	for {
		pctx, cancel := context.WithCancel(h.ctx)
		h.mu.Lock()
		code, gen, peerID, h.cancelPoll = h.code, h.generation, h.peerID, cancel
		h.mu.Unlock()
		a, err := h.c.call(pctx, ExpandPath(HostPath, code.NameplateString()),
			HostRequest{Version: Version, PeerID: peerID})
		cancel()
		if err != nil {
			if h.ctx.Err() == nil && pctx.Err() != nil {
				continue // the code changed under the poll: claim the new nameplate
			}
			return err
		}
		switch a.status {
		case http.StatusOK:
			var r HostResponse
			if err := json.Unmarshal(a.body, &r); err != nil {
				return fmt.Errorf("%w: the server's reply to the host: %s", ErrBadMessage, jsonErrorText(err))
			}
			h.gotRelay(r.Relay)
			code, gen, peerID := code, gen, peerID // the loop's variables change under the meetings
			for _, id := range r.Meetings {
				select {
				case sem <- struct{}{}:
				case <-h.ctx.Done():
					return h.ctx.Err()
				}
				h.wg.Add(1)
				go func() {
					defer h.wg.Done()
					defer func() { <-sem }()
					h.meet(id, code, gen, peerID)
				}()
			}
		case http.StatusAccepted: // no guest yet
			var r WaitingResponse
			if json.Unmarshal(a.body, &r) == nil { // the relay is optional: a body without it is no error
				h.gotRelay(r.Relay)
			}
		case http.StatusGone: // our claim lapsed (we were away too long): claim again, as a new peer
			h.mu.Lock()
			h.peerID = NewPeerID()
			h.mu.Unlock()
		case http.StatusConflict:
			h.mu.Lock()
			picked := h.picked
			h.mu.Unlock()
			if !picked {
				return fmt.Errorf("%w: nameplate %d (%s)", ErrNameplateInUse, code.Nameplate, errorMessage(a.body))
			}
			taken++
			h.newCode(code, max(999, min(MaxNameplate, 999*(1<<(taken/3)))), 0, ErrNameplateInUse)
		default:
			return refusal(a)
		}
	}
}

// newCode replaces old (if it is still the code) with a fresh one whose nameplate is at most maxPlate and whose
// secret has extra more words than usual, and says so.
func (h *Host) newCode(old Code, maxPlate, extra int, reason error) {
	h.mu.Lock()
	if h.code != old {
		h.mu.Unlock()
		return
	}
	h.code = newCode(maxPlate, extra)
	h.picked = true // ours to change again if its nameplate turns out to be taken
	h.generation++
	h.failures, h.guessing = 0, 0
	clear(h.seen)
	h.broadcastLocked()
	if h.cancelPoll != nil {
		h.cancelPoll()
	}
	code := h.code
	h.mu.Unlock()
	h.c.log.Info("signal: new code", "code", code.String(), "reason", reason)
	if h.cfg.OnNewCode != nil {
		h.cfg.OnNewCode(code, reason)
	}
}

func (h *Host) broadcastLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// release frees the nameplate at once rather than when our presence lapses.
func (h *Host) release(code Code) {
	h.mu.Lock()
	peerID := h.peerID
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), closeTimeout)
	defer cancel()
	if _, err := h.c.post(ctx, ExpandPath(ReleasePath, code.NameplateString()),
		ReleaseRequest{PeerID: peerID}); err != nil {
		h.c.log.Debug("signal: releasing the nameplate", "nameplate", code.Nameplate, "err", err)
	}
}

// meet runs the host's side of one guest's meeting.
func (h *Host) meet(id string, code Code, gen int, peerID string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.GuestTimeout)
	defer cancel()
	mb := newMailbox(h.c, id, peerID)
	closed := false
	defer func() {
		if !closed {
			mb.close(ctx)
		}
	}()
	log := h.c.log.With("meeting", id)

	msg0, err := mb.recv(ctx)
	if err != nil {
		log.Debug("signal: guest left before its first message", "err", err)
		return
	}
	if !h.firstTime(msg0, gen) {
		// A PAKE message is random every time: seeing one again means it was replayed. Answering it would not
		// help whoever replayed it (the key needs the guest's secret), but would cost a failed attempt.
		log.Warn("signal: dropped a replayed guest message")
		return
	}
	if !h.beginGuess(ctx, gen) {
		return // the code was retired meanwhile, or we are closing
	}
	ok := false
	defer func() { h.endGuess(gen, ok) }()
	hs, reply, err := newHostHandshake(code, id, msg0)
	if err != nil {
		log.Debug("signal: bad first message from a guest", "err", err)
		ok = true // nothing was answered, so nothing was guessed
		return
	}
	if err := mb.send(ctx, reply); err != nil {
		log.Debug("signal: answering the guest", "err", err)
		return
	}
	msg1, err := mb.recv(ctx)
	if err != nil {
		log.Info("signal: guest left before confirming the key", "err", err)
		return
	}
	h.mu.Lock()
	cands := h.cands
	h.mu.Unlock()
	peer, reply, err := hs.hostConfirm(msg1, cands, h.cfg.Ciphers)
	if err != nil {
		log.Warn("signal: a guest failed key confirmation (wrong code?)", "err", err)
		return
	}
	ok = true
	// Our offer goes to the guest even when it has no cipher in common with us, so that it too can tell why the
	// meeting fails.
	if err := mb.send(ctx, reply); err != nil {
		log.Debug("signal: sending our candidates", "err", err)
		return
	}
	// Done with the server: the guest drains our last message, then hears that we closed.
	mb.close(ctx)
	closed = true
	cipher, err := chooseCipher(h.cfg.Ciphers, peer.Ciphers)
	if err != nil {
		log.Warn("signal: cannot connect a guest", "err", err)
		return
	}
	m := &Meeting{ID: id, Code: code, Host: true, Started: start, Peer: peer.Candidates, Key: hs.keys.path,
		Verifier: hs.keys.verifier, Cipher: cipher}
	select {
	case h.met <- m:
	case <-h.ctx.Done():
	}
}

// firstTime records the guest's first message and reports whether it is new for this code.
func (h *Host) firstTime(msg []byte, gen int) bool {
	sum := sha256.Sum256(msg)
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.generation {
		return false
	}
	if _, dup := h.seen[sum]; dup {
		return false
	}
	if len(h.seen) >= maxSeen {
		clear(h.seen)
	}
	h.seen[sum] = struct{}{}
	return true
}

// beginGuess waits until answering one more guess keeps failures below MaxFailures even if every guess in flight
// fails, and takes that slot. It returns false when the code of generation gen is retired or ctx ends.
func (h *Host) beginGuess(ctx context.Context, gen int) bool {
	for {
		h.mu.Lock()
		if gen != h.generation {
			h.mu.Unlock()
			return false
		}
		if h.failures+h.guessing < h.cfg.MaxFailures {
			h.guessing++
			h.mu.Unlock()
			return true
		}
		changed := h.changed
		h.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// endGuess frees the slot of a guess; a failed one counts, and the last allowed failure retires the code.
func (h *Host) endGuess(gen int, ok bool) {
	h.mu.Lock()
	if gen != h.generation {
		h.mu.Unlock()
		return
	}
	h.guessing--
	if !ok {
		h.failures++
	}
	retire := h.failures >= h.cfg.MaxFailures
	old := h.code
	h.broadcastLocked()
	h.mu.Unlock()
	if retire && h.ctx.Err() == nil {
		// Each retired code is followed by one a word longer (about 8 bits more, up to maxExtraWords), so that a guesser
		// who keeps making the host retire codes does not keep its odds: summed over every code they stay under
		// 1.01 times those against the first.
		h.mu.Lock()
		h.retired++
		extra := min(h.retired, maxExtraWords)
		h.mu.Unlock()
		h.newCode(old, 999, extra, ErrCodeRetired) // ends the poll parked on the old nameplate
		h.release(old)
	}
}
