package signal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Meeting is the outcome of a meeting between a host and one guest: the keys both sides agreed on through the PAKE
// and the other side's candidates, which travelled encrypted under them.
type Meeting struct {
	ID   string // the meeting's ID on the server
	Code Code   // the code it was met with
	Host bool   // this side is the host
	Peer []Candidate
	// Dialer: this side dials the uTP connections. The guest always does.
	Dialer bool
	// Key is the 32-byte path key (KeySize) for the transport: derived from the PAKE's session key, so neither the
	// server nor anyone who saw the messages knows it, and every meeting has its own.
	Key []byte
	// Started is when this side began the meeting: a guest, when it asked for the host; a host, when the guest
	// arrived.
	Started time.Time
	// Verifier is a short string, e.g. "brave-otter-quiet-finch", derived from the session key. Both sides show
	// the same one; people who compare it aloud know that nobody sat in the middle.
	Verifier string
	// Cipher is the path cipher both sides picked from their offers (the host's best that the guest offered too),
	// e.g. "aes-256-gcm": the transport must seal the path with it.
	Cipher string
}

// Join meets the host of code as a guest: it waits (long-polls, retrying transient errors with backoff) until the
// host of the nameplate is there, runs the PAKE with it through a meeting of their own, confirms the key, and
// swaps candidates with it, encrypted. It returns when the meeting is complete or ctx ends.
//
// A host that leaves before it answered is waited for again. Errors: ErrConfirmFailed (a wrong code, or altered
// messages), ErrPeerLeft (the host left after it answered),
// ErrBadMessage, ErrBadCandidates (ours, or the host's), ErrRejected (*Error), or ctx's error.
func (c *Client) Join(ctx context.Context, code Code, candidates []Candidate) (*Meeting, error) {
	return c.JoinWith(ctx, code, JoinConfig{Candidates: candidates})
}

// JoinConfig says what a guest sends the host.
type JoinConfig struct {
	// Candidates are the guest's addresses known before the meeting (host and server-reflexive ones).
	Candidates []Candidate
	// Ciphers are the path ciphers the guest can use, best first (transport/utp's names, e.g. utp.Ciphers()),
	// sent (encrypted) to the host, which picks the first of its own that is among them. Empty means DefaultCipher
	// alone.
	Ciphers []string
	// Gather, if set, finds more candidates once the server put the guest in a meeting, so that the relay
	// credentials of that answer are known (relay is nil when the server runs no relay): typically a TURN
	// allocation's relayed address. It runs concurrently with the key exchange, once per Join; its candidates
	// are added to Candidates before they are sent. An error from it ends the Join: a Gather that can do without
	// its candidates returns none and no error.
	Gather func(ctx context.Context, relay *RelayInfo) ([]Candidate, error)
}

// gathered is the outcome of a JoinConfig.Gather.
type gathered struct {
	cands []Candidate
	err   error
}

// JoinWith is Join with the guest's candidates given by cfg.
func (c *Client) JoinWith(ctx context.Context, code Code, cfg JoinConfig) (*Meeting, error) {
	if code.Nameplate == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidCode)
	}
	ciphers, err := ourCiphers(cfg.Ciphers)
	if err != nil {
		return nil, err
	}
	if cfg.Gather == nil {
		if err := validateCandidates(cfg.Candidates, DefaultMaxCandidates); err != nil {
			return nil, fmt.Errorf("our candidates: %w", err)
		}
	} else if len(cfg.Candidates) > DefaultMaxCandidates {
		return nil, fmt.Errorf("our candidates: %w: more than %d", ErrBadCandidates, DefaultMaxCandidates)
	}
	gctx, stopGather := context.WithCancel(ctx)
	var gather chan gathered // nil until Gather started; then its one result, kept for later attempts
	defer func() {
		stopGather()
		if gather != nil { // Gather is ours: do not return while it still runs
			g := <-gather
			gather <- g
		}
	}()
	candidates := func() ([]Candidate, error) {
		if gather == nil {
			return cfg.Candidates, nil
		}
		var g gathered
		select {
		case g = <-gather:
			gather <- g
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if g.err != nil {
			return nil, fmt.Errorf("signal: gathering our candidates: %w", g.err)
		}
		all := append(append([]Candidate(nil), cfg.Candidates...), g.cands...)
		if err := validateCandidates(all, DefaultMaxCandidates); err != nil {
			return nil, fmt.Errorf("our candidates: %w", err)
		}
		return all, nil
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		peerID := NewPeerID()
		id, relay, err := c.joinNameplate(ctx, code, peerID)
		if err != nil {
			return nil, err
		}
		if cfg.Gather != nil && gather == nil {
			gather = make(chan gathered, 1)
			go func() {
				cs, err := cfg.Gather(gctx, relay)
				gather <- gathered{cs, err}
			}()
		}
		mb := newMailbox(c, id, peerID)
		m, err := c.guestMeeting(ctx, mb, code, ciphers, candidates)
		if err == nil {
			m.Started = start
			return m, nil
		}
		// The host notices at once and, when we got as far as its confirmation, counts a failed attempt.
		mb.close(ctx)
		var gone *hostGoneError
		if !errors.As(err, &gone) || attempt >= maxJoins {
			return nil, err
		}
		// The host left before it answered (it restarted, or lost its claim): no guess was spent, so wait for it
		// again, as a new guest. Not for ever: a host also drops, unanswered, a first message it cannot use.
		c.log.Debug("signal: the host left before answering; joining again", "nameplate", code.Nameplate, "err", gone.err)
	}
}

// maxJoins bounds the meetings a guest starts in one Join when the host leaves them before answering.
const maxJoins = 3

// hostGoneError is a meeting whose host left before it sent anything.
type hostGoneError struct{ err error }

func (e *hostGoneError) Error() string { return e.err.Error() }
func (e *hostGoneError) Unwrap() error { return e.err }

// joinNameplate waits until the server puts us in a meeting with the host of code; it returns the meeting and the
// relay credentials that came with it (nil: none).
func (c *Client) joinNameplate(ctx context.Context, code Code, peerID string) (string, *RelayInfo, error) {
	path := ExpandPath(GuestPath, code.NameplateString())
	full := 0 // consecutive "nameplate full" answers
	for {
		a, err := c.call(ctx, path, GuestRequest{Version: Version, PeerID: peerID})
		if err != nil {
			if ctx.Err() != nil && full > 0 {
				return "", nil, fmt.Errorf("%w (nameplate %d): %w", ErrHostBusy, code.Nameplate, err)
			}
			if ctx.Err() != nil {
				return "", nil, fmt.Errorf("signal: waiting for the host of nameplate %d: %w", code.Nameplate, err)
			}
			return "", nil, err
		}
		switch a.status {
		case http.StatusOK:
			var r GuestResponse
			if err := json.Unmarshal(a.body, &r); err != nil || r.Meeting == "" {
				return "", nil, fmt.Errorf("%w: the server's answer to a guest: %s", ErrBadMessage, errorMessage(a.body))
			}
			return r.Meeting, r.Relay, nil
		case http.StatusAccepted: // no host yet: wait again
			full = 0
		case http.StatusConflict: // the host has as many guests in meetings as the server allows: soon it has fewer
			d := backoff(c.backoffMin, c.backoffMax, full, 0)
			full++
			c.log.Debug("signal: the host is busy; retrying", "nameplate", code.Nameplate, "in", d)
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return "", nil, fmt.Errorf("%w (nameplate %d): %w", ErrHostBusy, code.Nameplate, ctx.Err())
			}
		default:
			return "", nil, refusal(a)
		}
	}
}

// guestMeeting runs the guest's side of meeting mb, offering ciphers; candidates gives ours once they are needed.
func (c *Client) guestMeeting(ctx context.Context, mb *mailbox, code Code, ciphers []string, candidates func() ([]Candidate, error)) (*Meeting, error) {
	hs, msg0, err := newGuestHandshake(code, mb.id)
	if err != nil {
		return nil, err
	}
	if err := mb.send(ctx, msg0); err != nil {
		return nil, err
	}
	hostMsg0, err := mb.recv(ctx)
	if errors.Is(err, ErrPeerLeft) {
		return nil, &hostGoneError{err}
	}
	if err != nil {
		return nil, err
	}
	cands, err := candidates()
	if err != nil {
		return nil, err
	}
	msg1, err := hs.guestConfirm(hostMsg0, cands, ciphers)
	if err != nil {
		return nil, err
	}
	if err := mb.send(ctx, msg1); err != nil {
		return nil, err
	}
	hostMsg1, err := mb.recv(ctx)
	if err != nil {
		return nil, err
	}
	peer, err := hs.guestOpen(hostMsg1)
	if err != nil {
		return nil, err
	}
	cipher, err := chooseCipher(peer.Ciphers, ciphers)
	if err != nil {
		return nil, err
	}
	c.log.Debug("signal: met the host", "nameplate", code.Nameplate, "meeting", mb.id, "cipher", cipher)
	return &Meeting{ID: mb.id, Code: code, Peer: peer.Candidates, Dialer: true, Key: hs.keys.path,
		Verifier: hs.keys.verifier, Cipher: cipher}, nil
}
