package signal

import (
	"bytes"
	"cmp"
	"context"
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
	// ErrNameplateInUse: another host holds the nameplate of the code given to Host.
	ErrNameplateInUse = errors.New("signal: nameplate in use by another host")
	// ErrHostBusy: the host had as many guests in meetings as the server allows for as long as a guest waited.
	ErrHostBusy = errors.New("signal: the host stayed busy with other guests")
	// ErrPeerLeft: the other side of a meeting closed it or went away before the meeting completed.
	ErrPeerLeft = errors.New("signal: the other side left the meeting")
	// ErrRejected: the server refused a request as invalid (a 4xx it does not use for anything else); the *Error in
	// the chain has the status and the message.
	ErrRejected = errors.New("signal: request rejected by the server")
)

// Error is an answer from the signalling server that ended a call: its HTTP status and the server's message.
// errors.Is matches it with ErrRejected for a 4xx.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("signal: server said %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is makes errors.Is(err, ErrRejected) work.
func (e *Error) Is(target error) bool {
	return target == ErrRejected && e.Status >= 400 && e.Status < 500
}

// Client talks to one signalling server. It is safe for concurrent use.
type Client struct {
	base           string
	baseErr        error
	hc             *http.Client
	log            *slog.Logger
	backoffMin     time.Duration
	backoffMax     time.Duration
	requestTimeout time.Duration
}

// Defaults for the zero fields of ClientConfig.
const (
	DefaultBackoffMin     = 250 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
	DefaultRequestTimeout = 60 * time.Second
)

// ClientConfig configures a Client. The zero value, or a nil *ClientConfig, takes every default.
type ClientConfig struct {
	// HTTPClient makes the requests; nil means a client on http.DefaultTransport. Do not give it a Timeout shorter
	// than a long-poll.
	HTTPClient *http.Client
	// Logger receives retries and meetings; nil discards them.
	Logger *slog.Logger
	// BackoffMin and BackoffMax are the first and the longest pause between retries after a transient error
	// (DefaultBackoffMin, DefaultBackoffMax); pauses double and are jittered, and never undercut the server's
	// Retry-After.
	BackoffMin, BackoffMax time.Duration
	// RequestTimeout bounds one HTTP request, long-poll included (DefaultRequestTimeout; it must exceed the server's
	// long-poll, 25 s by default). A request that hits it is retried.
	RequestTimeout time.Duration
}

// NewClient returns a Client with the default configuration for the server at baseURL, e.g.
// "http://signal.example:8080". A bad URL makes every call fail.
func NewClient(baseURL string) *Client { return (*ClientConfig)(nil).NewClient(baseURL) }

// NewClient returns a Client configured by cfg for the server at baseURL. A bad URL makes every call fail.
func (cfg *ClientConfig) NewClient(baseURL string) *Client {
	if cfg == nil {
		cfg = &ClientConfig{}
	}
	c := &Client{
		base:           strings.TrimRight(baseURL, "/"),
		hc:             cfg.HTTPClient,
		log:            cfg.Logger,
		backoffMin:     cmp.Or(cfg.BackoffMin, DefaultBackoffMin),
		backoffMax:     cmp.Or(cfg.BackoffMax, DefaultBackoffMax),
		requestTimeout: cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout),
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if u, err := url.Parse(baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.baseErr = fmt.Errorf("signal: server URL %q: want http://host[:port] or https://host[:port]", baseURL)
	}
	return c
}

// httpAnswer is one HTTP answer from the server: its status and body.
type httpAnswer struct {
	status int
	body   []byte
}

// maxResponseBytes caps what the client reads from the server.
const maxResponseBytes = 64 << 10

// errTransient marks a failure worth retrying: no answer, a 5xx, a 429.
type transientError struct {
	err        error
	retryAfter time.Duration
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// post sends one JSON request and reads the answer. Transient failures come back as *transientError.
func (c *Client) post(ctx context.Context, path string, req any) (httpAnswer, error) {
	if c.baseErr != nil {
		return httpAnswer{}, c.baseErr
	}
	body, err := json.Marshal(req)
	if err != nil {
		return httpAnswer{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(rctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return httpAnswer{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	// Every call of the protocol is idempotent (a peer ID, a meeting and a sequence number name it), so net/http
	// may resend it at once on a keep-alive connection the server had closed.
	hr.Header.Set("Idempotency-Key", "p2phttp")
	res, err := c.hc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return httpAnswer{}, ctx.Err()
		}
		return httpAnswer{}, &transientError{err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		if ctx.Err() != nil {
			return httpAnswer{}, ctx.Err()
		}
		return httpAnswer{}, &transientError{err: fmt.Errorf("reading the reply: %w", err)}
	}
	if res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500 {
		return httpAnswer{}, &transientError{err: &Error{Status: res.StatusCode, Message: errorMessage(data)},
			retryAfter: parseRetryAfter(res.Header.Get("Retry-After"))}
	}
	return httpAnswer{status: res.StatusCode, body: data}, nil
}

// call is post retried with backoff on transient failures until ctx ends.
func (c *Client) call(ctx context.Context, path string, req any) (httpAnswer, error) {
	var last error
	for attempt := 0; ; attempt++ {
		a, err := c.post(ctx, path, req)
		var te *transientError
		if !errors.As(err, &te) {
			if err != nil && ctx.Err() != nil && last != nil {
				return a, fmt.Errorf("signal: %s (last error: %v): %w", c.base, last, ctx.Err())
			}
			return a, err
		}
		last = te.err
		d := backoff(c.backoffMin, c.backoffMax, attempt, te.retryAfter)
		c.log.Debug("signal: retrying", "path", path, "err", te.err, "in", d)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return httpAnswer{}, fmt.Errorf("signal: reaching %s (last error: %v): %w", c.base, last, ctx.Err())
		}
	}
}

// refusal turns an answer the caller did not expect into an error.
func refusal(a httpAnswer) error {
	return &Error{Status: a.status, Message: errorMessage(a.body)}
}

func errorMessage(data []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	if len(data) > 200 {
		data = data[:200]
	}
	return strings.TrimSpace(string(data))
}

// backoff is exponential with jitter: a random pause in [d/2, d) where d doubles from lo to hi; never shorter than
// the server's Retry-After.
func backoff(lo, hi time.Duration, attempt int, retryAfter time.Duration) time.Duration {
	d := lo << min(attempt, 30)
	if d > hi || d <= 0 {
		d = hi
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

// parseRetryAfter reads Retry-After in seconds or as an HTTP date, capped at an hour.
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
