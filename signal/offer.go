package signal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// ProtocolVersion is the version of the offer format and key derivation this
// package speaks; it travels in every offer.
const ProtocolVersion = 1

// Errors about offers, matchable with errors.Is.
var (
	// ErrBadOffer reports an offer that is malformed: on the server, the
	// request's; on the client, the peer's as relayed by the server.
	ErrBadOffer = errors.New("signal: bad offer")
	// ErrTampered reports a peer offer whose MAC does not verify: the server
	// (or something between) changed it, or the peer used another code.
	ErrTampered = errors.New("signal: peer offer failed authentication (tampered, or a different code)")
)

// Offer is what a peer posts to a room and what the other peer receives.
type Offer struct {
	Version    int         `json:"version"`    // ProtocolVersion
	PeerID     string      `json:"peer_id"`    // 32 lowercase hex characters, random per Join
	Candidates []Candidate `json:"candidates"` // 1 to MaxCandidates
	// MAC is HMAC-SHA256, keyed by a key derived from the room code, over the
	// room ID, peer ID and candidates (see offerMAC); base64 in JSON.
	MAC []byte `json:"mac"`
}

// validate checks an offer's shape (not its MAC: the server cannot).
func (o *Offer) validate(maxCandidates int) error {
	if o.Version != ProtocolVersion {
		return fmt.Errorf("%w: unsupported protocol version %d (this side speaks %d)", ErrBadOffer, o.Version, ProtocolVersion)
	}
	if !isLowerHex(o.PeerID, 32) {
		return fmt.Errorf("%w: peer_id must be 32 lowercase hex characters", ErrBadOffer)
	}
	if err := validateCandidates(o.Candidates, maxCandidates); err != nil {
		return err
	}
	if len(o.MAC) != sha256.Size {
		return fmt.Errorf("%w: mac must be %d bytes (base64)", ErrBadOffer, sha256.Size)
	}
	return nil
}

// decodeOffer parses and validates an offer's JSON. Unknown fields are
// allowed (a later minor revision may add some); trailing data is not.
func decodeOffer(data []byte, maxCandidates int) (Offer, error) {
	var o Offer
	if err := json.Unmarshal(data, &o); err != nil {
		return Offer{}, fmt.Errorf("%w: %v", ErrBadOffer, jsonErrorText(err))
	}
	return o, o.validate(maxCandidates)
}

// offerMAC authenticates everything in an offer that the other peer acts on,
// bound to the room so an offer cannot be moved to another room.
func offerMAC(key []byte, roomID string, o *Offer) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "p2phttp signal v%d offer\n%s\n%s\n", o.Version, roomID, o.PeerID)
	for _, c := range o.Candidates {
		fmt.Fprintf(m, "%s %s\n", c.Kind, c.Addr)
	}
	return m.Sum(nil)
}

func newPeerID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isLowerHex(s string, n int) bool {
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

// Wire messages other than Offer.
type (
	// answer is the 200 body of POST /v1/rooms/{room}.
	answer struct {
		Room   string `json:"room"`
		Peer   Offer  `json:"peer"`
		Dialer bool   `json:"dialer"` // the receiving peer dials (its peer_id is the lower)
	}
	// waiting is the 202 body: the poll ended without a peer; post again.
	waiting struct {
		Status string `json:"status"` // "waiting"
	}
	// errorBody is every 4xx/5xx body.
	errorBody struct {
		Error string `json:"error"`
	}
)
