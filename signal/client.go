package signal

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Refusals from the server, matchable with errors.Is.
var (
	// ErrRoomFull: two other peers are already meeting with this code.
	ErrRoomFull = errors.New("signal: room full")
	// ErrRejected: the server refused the request as invalid (a 4xx other
	// than 409); the *Error in the chain has the status and the message.
	ErrRejected = errors.New("signal: request rejected by the server")
)

// Error is an answer from the signalling server that ended a Join: its HTTP
// status and the server's message. errors.Is matches 409 with ErrRoomFull and
// other 4xx with ErrRejected.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("signal: server said %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is makes errors.Is(err, ErrRoomFull) and errors.Is(err, ErrRejected) work.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrRoomFull:
		return e.Status == http.StatusConflict
	case ErrRejected:
		return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusConflict
	}
	return false
}

// Meeting is the outcome of a successful Join.
type Meeting struct {
	RoomID string // what the server knows the room as
	Self   Offer  // what we posted
	Peer   Offer  // the other peer's offer, MAC verified
	Dialer bool   // this side dials: its peer ID is the lower (both sides compute the same)
	// Key is the 32-byte session key (KeySize) for authenticating punch and
	// control packets: derived from the code and both peer IDs, so the server
	// never knows it and each meeting has its own.
	Key []byte
}

// Client joins rooms on one signalling server. It is safe for concurrent use.
type Client struct {
	base           string
	baseErr        error
	hc             *http.Client
	log            *slog.Logger
	backoffMin     time.Duration
	backoffMax     time.Duration
	requestTimeout time.Duration
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient sets the http.Client used for requests (default: a client on
// http.DefaultTransport). Do not give it a Timeout shorter than a long-poll.
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.hc = hc } }

// WithLogger sets where the client logs retries (default: discard).
func WithLogger(l *slog.Logger) ClientOption { return func(c *Client) { c.log = l } }

// WithBackoff sets the first and the longest pause between retries after a
// transient error (default 250 ms and 10 s); pauses double and are jittered.
func WithBackoff(initial, max time.Duration) ClientOption {
	return func(c *Client) { c.backoffMin, c.backoffMax = initial, max }
}

// WithRequestTimeout bounds one HTTP request, long-poll included (default 60
// s; it must exceed the server's PollWait, 25 s by default). A request that
// hits it is retried.
func WithRequestTimeout(d time.Duration) ClientOption {
	return func(c *Client) { c.requestTimeout = d }
}

// NewClient returns a Client for the server at baseURL, e.g.
// "http://signal.example:8080". A bad URL makes every Join fail.
func NewClient(baseURL string, opts ...ClientOption) *Client {
	c := &Client{
		base:           strings.TrimRight(baseURL, "/"),
		hc:             &http.Client{},
		log:            slog.New(slog.DiscardHandler),
		backoffMin:     250 * time.Millisecond,
		backoffMax:     10 * time.Second,
		requestTimeout: 60 * time.Second,
	}
	if u, err := url.Parse(baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.baseErr = fmt.Errorf("signal: server URL %q: want http://host[:port] or https://host[:port]", baseURL)
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Join posts our candidates to the room derived from code and waits (bounded
// long-polls, retried with backoff on transient errors: connection failures,
// 5xx, 429 after its Retry-After, request timeouts) until the other peer's
// offer arrives or ctx ends. If the room expires while we wait, Join opens it
// again. It derives keys from the code with a deliberately slow KDF (~0.1 s
// per new code; cached for re-joins).
//
// Errors: ErrInvalidCode, ErrBadOffer (our candidates, or the peer's offer as
// relayed), ErrTampered (the peer's offer fails its MAC), ErrRoomFull,
// ErrRejected (*Error), or ctx's error wrapped with what Join was waiting for.
func (c *Client) Join(ctx context.Context, code string, candidates []Candidate) (*Meeting, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	if err := validateCandidates(candidates, DefaultMaxCandidates); err != nil {
		return nil, fmt.Errorf("our candidates: %w", err)
	}
	sec, err := derive(code)
	if err != nil {
		return nil, err
	}
	self := Offer{Version: ProtocolVersion, PeerID: newPeerID(), Candidates: append([]Candidate(nil), candidates...)}
	self.MAC = offerMAC(sec.macKey, sec.roomID, &self)
	body, err := json.Marshal(self)
	if err != nil {
		return nil, err
	}
	endpoint := c.base + "/v1/rooms/" + sec.roomID

	var (
		lastErr  error // the last transient failure, for the final error
		attempt  int   // consecutive transient failures
		inRoom   bool  // the server has us in the room (we got a 202)
		response *http.Response
	)
	for {
		response, err = c.post(ctx, endpoint, body, self.PeerID)
		if ctx.Err() != nil {
			if response != nil {
				response.Body.Close()
			}
			if inRoom {
				return nil, fmt.Errorf("signal: waiting for the other peer in room %.8s…: %w", sec.roomID, ctx.Err())
			}
			if lastErr == nil {
				lastErr = err
			}
			return nil, fmt.Errorf("signal: reaching the signalling server %s (last error: %v): %w", c.base, lastErr, ctx.Err())
		}
		var retryAfter time.Duration
		if err == nil {
			var done bool
			var m *Meeting
			m, retryAfter, done, err = c.handle(response, sec, &self, &inRoom)
			if done {
				return m, err
			}
		}
		if err == nil { // 202 or 410: poll again now
			attempt = 0
			continue
		}
		lastErr = err
		d := backoff(c.backoffMin, c.backoffMax, attempt, retryAfter)
		attempt++
		c.log.Debug("signal: retrying", "err", err, "in", d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
}

func (c *Client) post(ctx context.Context, endpoint string, body []byte, peerID string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	// Re-posting an offer is idempotent (same peer ID), so net/http may
	// resend it at once on a keep-alive connection the server had closed.
	req.Header.Set("Idempotency-Key", peerID)
	res, err := c.hc.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	// The body must be read before cancel: wrap it so Close cancels.
	res.Body = &cancelOnClose{ReadCloser: res.Body, cancel: cancel}
	return res, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// maxResponseBytes caps what the client reads from the server.
const maxResponseBytes = 64 << 10

// handle interprets one response. done means Join returns (m, err); else err
// is a transient error to back off from (nil: poll again at once).
func (c *Client) handle(res *http.Response, sec *secrets, self *Offer, inRoom *bool) (m *Meeting, retryAfter time.Duration, done bool, err error) {
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		return nil, 0, false, fmt.Errorf("reading the answer: %w", err)
	}
	switch st := res.StatusCode; {
	case st == http.StatusOK:
		m, err := c.meeting(data, sec, self)
		return m, 0, true, err
	case st == http.StatusAccepted: // poll ended, still waiting
		*inRoom = true
		return nil, 0, false, nil
	case st == http.StatusGone: // room expired under us: open it again
		c.log.Debug("signal: room expired; joining again")
		*inRoom = false
		return nil, 0, false, nil
	case st == http.StatusTooManyRequests || st >= 500:
		return nil, parseRetryAfter(res.Header.Get("Retry-After")), false, &Error{Status: st, Message: errorMessage(data)}
	default:
		return nil, 0, true, &Error{Status: st, Message: errorMessage(data)}
	}
}

func errorMessage(data []byte) string {
	var e errorBody
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	if len(data) > 200 {
		data = data[:200]
	}
	return strings.TrimSpace(string(data))
}

// meeting checks the server's answer: the peer's offer must be well-formed,
// not our own (a reflecting server), and carry a valid MAC for this room.
func (c *Client) meeting(data []byte, sec *secrets, self *Offer) (*Meeting, error) {
	var a answer
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("%w: server answer: %v", ErrBadOffer, jsonErrorText(err))
	}
	peer := a.Peer
	if err := peer.validate(DefaultMaxCandidates); err != nil {
		return nil, fmt.Errorf("peer offer: %w", err)
	}
	if peer.PeerID == self.PeerID {
		return nil, fmt.Errorf("%w: the server returned our own offer", ErrBadOffer)
	}
	if !hmac.Equal(peer.MAC, offerMAC(sec.macKey, sec.roomID, &peer)) {
		return nil, ErrTampered
	}
	return &Meeting{
		RoomID: sec.roomID,
		Self:   *self,
		Peer:   peer,
		Dialer: self.PeerID < peer.PeerID,
		Key:    sec.sessionKey(self.PeerID, peer.PeerID),
	}, nil
}

// backoff is exponential with jitter: a random pause in [d/2, d) where d
// doubles from min to max; never shorter than the server's Retry-After.
func backoff(lo, hi time.Duration, attempt int, retryAfter time.Duration) time.Duration {
	d := lo << min(attempt, 30)
	if d > hi || d <= 0 {
		d = hi
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

// parseRetryAfter reads Retry-After in seconds or as an HTTP date, capped at
// an hour.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(min(max(secs, 0), 3600)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), time.Hour)
}
