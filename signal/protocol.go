package signal

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The signalling protocol, version 2: the server is a blind mailbox. A host
// claims a nameplate (the first part of a code) and long-polls for guests;
// each guest that posts to the nameplate gets a meeting of its own with the
// host, through which the two exchange a few small opaque messages (the PAKE
// and the sealed candidates). The server never sees the secret words, a key or
// an address. Every request is a POST with a JSON body of at most
// MaxRequestBytes; every response is JSON, errors being ErrorResponse.

// Version is the protocol version this package speaks. It travels in
// HostRequest and GuestRequest; the server refuses any other with 400.
const Version = 2

// Endpoint patterns, in net/http.ServeMux syntax without the method (every
// endpoint is POST, except /healthz and /metrics which are GET). ExpandPath
// fills in the one wildcard.
const (
	// HostPath: the host claims {nameplate} and long-polls for guests.
	// Body HostRequest. 200 HostResponse (meetings that arrived), 202
	// WaitingResponse (poll ended, re-post at once), 409 MsgNameplateInUse
	// (another peer_id holds it), 410 MsgClaimEnded (this peer_id's claim
	// ended: claim again with a fresh peer_id).
	HostPath = "/v2/nameplates/{nameplate}/host"
	// ReleasePath: the host frees its nameplate at once. Body
	// ReleaseRequest; 200 {}. Releasing a nameplate the peer does not hold
	// (any more) is also 200.
	ReleasePath = "/v2/nameplates/{nameplate}/release"
	// GuestPath: a guest asks to meet the host of {nameplate}. Body
	// GuestRequest. 200 GuestResponse (re-posting with the same peer_id
	// returns the same meeting), 202 WaitingResponse (no host came during the
	// long-poll; re-post), 503 with Retry-After (at capacity or shutting
	// down; retry), 409 MsgNameplateFull (the host has as many meetings open
	// as the server allows).
	GuestPath = "/v2/nameplates/{nameplate}/guest"
	// SendPath: append a message to the other side of {meeting}. Body
	// SendRequest; 200 {}. 400 seq gap, 403 not a member, 404 unknown
	// meeting, 409 same seq with another body, 410 MsgPeerLeft or
	// MsgMeetingExpired, 413 message over MaxMessageBytes or seq at the
	// per-side message cap.
	SendPath = "/v2/meetings/{meeting}/send"
	// RecvPath: long-poll for the other side's messages. Body RecvRequest.
	// 200 RecvResponse (at least one message), 202 WaitingResponse, 410
	// MsgPeerLeft (the other side closed or left and everything it sent was
	// drained) or MsgMeetingExpired; 403 and 404 as for SendPath.
	RecvPath = "/v2/meetings/{meeting}/recv"
	// ClosePath: either side ends {meeting}. Body CloseRequest; 200 {}.
	ClosePath = "/v2/meetings/{meeting}/close"
	// RelayPath: a guest gets fresh relay credentials before its current
	// ones expire (a host gets them with every poll). Body RelayRequest; 200
	// RelayResponse. It works after the meeting ended, for as long as the
	// renewal token allows: 403 MsgBadRenewal, 410 MsgRenewalEnded past its
	// limit, 404 MsgNoRelay when the server runs no relay.
	RelayPath = "/v2/relay"

	// HealthzPath (GET): 200 HealthResponse, 503 when the server's store is
	// unreachable.
	HealthzPath = "/healthz"
	// MetricsPath (GET): Prometheus text format.
	MetricsPath = "/metrics"
)

// ExpandPath returns pattern (one of the XxxPath constants) with its single
// {wildcard} replaced by value, which the caller has validated (a nameplate or
// a meeting ID: neither needs escaping).
func ExpandPath(pattern, value string) string {
	i := strings.IndexByte(pattern, '{')
	j := strings.IndexByte(pattern, '}')
	if i < 0 || j < i {
		return pattern
	}
	return pattern[:i] + value + pattern[j+1:]
}

// Limits that both sides know. A server may be configured with lower caps for
// the DefaultXxx ones; the fixed ones are part of the protocol.
const (
	// MaxRequestBytes caps a request body; the server answers 413 beyond.
	MaxRequestBytes = 8 << 10
	// MaxMessageBytes caps a message body (decoded); 413 beyond.
	MaxMessageBytes = 4 << 10
	// PeerIDLen and MeetingIDLen are the lengths, in lowercase hex
	// characters, of a peer ID and of a meeting ID (128 random bits each).
	PeerIDLen    = 32
	MeetingIDLen = 32

	// DefaultMaxMessages is how many messages each side of a meeting may
	// send (seq 0..DefaultMaxMessages-1).
	DefaultMaxMessages = 16
	// DefaultPollWait is how long a long-poll waits before the server
	// answers 202; clients give a request at least this plus a margin.
	DefaultPollWait = 25 * time.Second
	// DefaultGrace is how long a peer counts as present after a poll of its
	// returned normally (200/202), so it can post again; and how long a
	// meeting side whose parked poll's connection closed has to come back
	// before the other side hears MsgPeerLeft.
	DefaultGrace = 5 * time.Second
	// DefaultMeetingTTL is the longest a meeting lives after it was made.
	DefaultMeetingTTL = 2 * time.Minute
)

// Error messages of the responses a client acts on (the "error" of an
// ErrorResponse). Other errors carry free text.
const (
	MsgNameplateInUse   = "nameplate in use"  // 409 on HostPath
	MsgNameplateFull    = "nameplate full"    // 409 on GuestPath
	MsgClaimEnded       = "claim ended"       // 410 on HostPath
	MsgPeerLeft         = "peer left"         // 410 on the meeting paths
	MsgMeetingExpired   = "meeting expired"   // 410 on the meeting paths
	MsgUnknownMeeting   = "unknown meeting"   // 404 on the meeting paths
	MsgNotMember        = "not a member"      // 403 on the meeting paths
	MsgShuttingDown     = "shutting down"     // 503: retry (Retry-After), another instance will answer
	MsgStoreUnavailable = "store unavailable" // 503: the server's store (Redis) is down; retry
	MsgRenewalEnded     = "renewal ended"     // 410 on RelayPath: the token's limit passed; meet again
	MsgBadRenewal       = "bad renewal"       // 403 on RelayPath: not a token this deployment made
	MsgNoRelay          = "no relay"          // 404 on RelayPath: the server runs no relay
)

// StatusWaiting is the Status of a WaitingResponse.
const StatusWaiting = "waiting"

// HostRequest is the body of HostPath.
type HostRequest struct {
	Version int    `json:"version"` // Version
	PeerID  string `json:"peer_id"` // the host's bearer token: NewPeerID, the same for every poll of one claim
}

// HostResponse is the 200 body of HostPath: the meetings guests opened since
// the host's last poll (at least one), oldest first. The host's 202 is a
// WaitingResponse, which carries Relay too: a host gets fresh relay
// credentials with every poll.
type HostResponse struct {
	Meetings []string   `json:"meetings"`
	Relay    *RelayInfo `json:"relay,omitempty"` // nil when the server runs no relay
}

// RelayInfo tells a peer where the deployment's TURN relay is and lets it
// allocate there until Expires. The credentials are the usual TURN REST ones
// ("<expiry>:<user>" and an HMAC of it under the deployment's secret), so any
// relay sharing the secret accepts them; their user part is a hash of the
// peer's ID, so each peer has its own allocation quota and the relay never
// learns the ID itself. Only sealed datagrams travel through a relay.
type RelayInfo struct {
	// URLs are TURN URIs (RFC 7065), e.g.
	// "turn:203.0.113.9:3480?transport=udp" and the same with transport=tcp.
	URLs     []string  `json:"urls"`
	Username string    `json:"username"`
	Password string    `json:"password"`
	Expires  time.Time `json:"expires"`
	// Renewal, in a guest's credentials only, is the token RelayPath takes to
	// mint fresh ones for the same peer (the same TURN user) before these
	// expire: opaque to the peer, valid until a limit the server set when the
	// guest met (--turn-renew-for). Like a peer ID it is a bearer token: it
	// never goes to the relay.
	Renewal string `json:"renewal,omitempty"`
}

// RelayRequest is the body of RelayPath.
type RelayRequest struct {
	Renewal string `json:"renewal"` // RelayInfo.Renewal of the meeting's guest
}

// RelayResponse is the 200 body of RelayPath: fresh credentials for the same
// peer, with the same renewal token.
type RelayResponse struct {
	Relay *RelayInfo `json:"relay"`
}

// ReleaseRequest is the body of ReleasePath.
type ReleaseRequest struct {
	PeerID string `json:"peer_id"`
}

// GuestRequest is the body of GuestPath.
type GuestRequest struct {
	Version int    `json:"version"` // Version
	PeerID  string `json:"peer_id"` // the guest's bearer token: NewPeerID, fresh per meeting attempt
}

// GuestResponse is the 200 body of GuestPath.
type GuestResponse struct {
	Meeting string     `json:"meeting"`
	Relay   *RelayInfo `json:"relay,omitempty"` // nil when the server runs no relay
}

// SendRequest is the body of SendPath. Seq counts the sender's messages in
// this meeting from 0. Re-sending a seq with the same body is accepted (an
// idempotent retry); with another body it is refused (409).
type SendRequest struct {
	PeerID string `json:"peer_id"`
	Seq    int    `json:"seq"`
	Body   []byte `json:"body"` // base64 in JSON; 1..MaxMessageBytes bytes
}

// RecvRequest is the body of RecvPath: the caller wants the other side's
// messages with seq >= After.
type RecvRequest struct {
	PeerID string `json:"peer_id"`
	After  int    `json:"after"`
}

// RecvResponse is the 200 body of RecvPath, in seq order.
type RecvResponse struct {
	Messages []Message `json:"messages"`
}

// Message is one message of a meeting.
type Message struct {
	Seq  int    `json:"seq"`
	Body []byte `json:"body"` // base64 in JSON
}

// CloseRequest is the body of ClosePath.
type CloseRequest struct {
	PeerID string `json:"peer_id"`
}

// WaitingResponse is the 202 body of the long-polls: nothing yet, post again
// at once.
type WaitingResponse struct {
	Status string     `json:"status"`          // StatusWaiting
	Relay  *RelayInfo `json:"relay,omitempty"` // on a host's 202 only, when the server runs a relay
}

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// HealthResponse is the body of HealthzPath.
type HealthResponse struct {
	Status string `json:"status"`          // "ok", or "unavailable" with 503
	Store  string `json:"store,omitempty"` // "memory", or "redis HOST:PORT"
	Error  string `json:"error,omitempty"` // why the store is unreachable
	// Relay lists the TURN URIs of the server's relay (no credentials), so a
	// tool such as p2phttp doctor can test that it is reachable.
	Relay []string `json:"relay,omitempty"`
}

// Errors of the validators, matchable with errors.Is.
var (
	ErrBadNameplate = errors.New("signal: bad nameplate")
	ErrBadPeerID    = errors.New("signal: bad peer ID")
	ErrBadMeetingID = errors.New("signal: bad meeting ID")
	ErrBadEnvelope  = errors.New("signal: bad message envelope")
)

// ValidateNameplate checks that s is a nameplate as it appears in a URL:
// decimal 1..99999 with no leading zero.
func ValidateNameplate(s string) error {
	if len(s) == 0 || len(s) > 5 || s[0] == '0' {
		return fmt.Errorf("%w %q: want a number from 1 to 99999 without leading zeros", ErrBadNameplate, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("%w %q: want a number from 1 to 99999 without leading zeros", ErrBadNameplate, s)
		}
	}
	return nil
}

// ValidatePeerID checks that s is PeerIDLen lowercase hex characters.
func ValidatePeerID(s string) error {
	if !lowerHex(s, PeerIDLen) {
		return fmt.Errorf("%w: want %d lowercase hex characters", ErrBadPeerID, PeerIDLen)
	}
	return nil
}

// ValidateMeetingID checks that s is MeetingIDLen lowercase hex characters.
func ValidateMeetingID(s string) error {
	if !lowerHex(s, MeetingIDLen) {
		return fmt.Errorf("%w: want %d lowercase hex characters", ErrBadMeetingID, MeetingIDLen)
	}
	return nil
}

// ValidateMessage checks the envelope of a message (not its content, which
// only the peers understand): its seq and body size against the
// per-side cap maxMessages (DefaultMaxMessages unless the server says less).
func ValidateMessage(seq int, body []byte, maxMessages int) error {
	switch {
	case seq < 0:
		return fmt.Errorf("%w: negative seq %d", ErrBadEnvelope, seq)
	case seq >= maxMessages:
		return fmt.Errorf("%w: seq %d beyond the cap of %d messages per side", ErrBadEnvelope, seq, maxMessages)
	case len(body) == 0:
		return fmt.Errorf("%w: empty body", ErrBadEnvelope)
	case len(body) > MaxMessageBytes:
		return fmt.Errorf("%w: body of %d bytes over %d", ErrBadEnvelope, len(body), MaxMessageBytes)
	}
	return nil
}

// NewPeerID returns a fresh random peer ID.
func NewPeerID() string { return newHexID() }

// NewMeetingID returns a fresh random meeting ID.
func NewMeetingID() string { return newHexID() }

func newHexID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// lowerHex reports whether s is n lowercase hex characters.
func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
