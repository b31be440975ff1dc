package signalserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/signal/relay"
)

// relayInfo mints relay credentials for the peer peerID, or returns nil when
// the server tells peers of no relay. Each peer's credentials have a user of
// their own (so the relay's per-user quota is per peer), derived from its ID
// by a hash: the ID is the peer's bearer token here, and TURN usernames
// travel in the clear.
func (s *Server) relayInfo(peerID string) *signal.RelayInfo {
	if len(s.cfg.RelayURLs) == 0 {
		return nil
	}
	return s.mintRelay(relayUser(peerID), s.cfg.RelayCredentialTTL)
}

// relayUser is the TURN user of the peer peerID.
func relayUser(peerID string) string {
	sum := sha256.Sum256([]byte("p2phttp relay user\x00" + peerID))
	return hex.EncodeToString(sum[:12])
}

// mintRelay mints credentials for user that last ttl, or returns nil (logged) when it cannot.
func (s *Server) mintRelay(user string, ttl time.Duration) *signal.RelayInfo {
	cred, err := relay.NewCredentials(s.cfg.RelaySecret, user, ttl)
	if err != nil {
		s.log.Warn("signalserver: minting relay credentials", "err", err)
		return nil
	}
	return &signal.RelayInfo{URLs: slices.Clone(s.cfg.RelayURLs), Username: cred.Username, Password: cred.Password, Expires: cred.Expires}
}

// withRenewal returns a copy of the guest peerID's credentials info carrying a renewal token: with it the guest gets
// fresh credentials (RelayPath) until RelayRenewFor from now, after its meeting ended.
func (s *Server) withRenewal(info *signal.RelayInfo, peerID string) *signal.RelayInfo {
	if info == nil {
		return nil
	}
	out := *info
	out.Renewal = s.renewalToken(relayUser(peerID), time.Now().Add(s.cfg.RelayRenewFor).Unix())
	return &out
}

// A renewal token is "<until>.<user>.<mac>": until is a unix time, user the peer's TURN user, mac a truncated
// HMAC-SHA256 of both under the relay secret. It needs no record, so any server sharing the secret renews what
// another one handed out, and the renewed credentials are the same peer's (one allocation quota).
const renewalMACSize = 16

func (s *Server) renewalToken(user string, until int64) string {
	u := strconv.FormatInt(until, 10)
	return u + "." + user + "." + base64.RawURLEncoding.EncodeToString(s.renewalMAC(user, u))
}

func (s *Server) renewalMAC(user, until string) []byte {
	m := hmac.New(sha256.New, s.cfg.RelaySecret)
	m.Write([]byte("p2phttp relay renewal\x00" + user + "\x00" + until))
	return m.Sum(nil)[:renewalMACSize]
}

// checkRenewal returns the TURN user and the limit of a renewal token, or a refusal.
func (s *Server) checkRenewal(token string, now time.Time) (string, time.Time, *reply) {
	bad := answer(errorReply(http.StatusForbidden, signal.MsgBadRenewal))
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(token) > 128 {
		return "", time.Time{}, bad
	}
	until, err := strconv.ParseInt(parts[0], 10, 64)
	mac, err2 := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || err2 != nil || !hmac.Equal(mac, s.renewalMAC(parts[1], parts[0])) {
		return "", time.Time{}, bad
	}
	limit := time.Unix(until, 0)
	if !now.Before(limit) {
		return "", time.Time{}, answer(errorReply(http.StatusGone, signal.MsgRenewalEnded))
	}
	return parts[1], limit, nil
}

// renewRelay serves RelayPath: fresh credentials for the guest whose renewal token the request carries, lasting RelayCredentialTTL but never past the token's limit. It reads no record: the token is the proof.
func (s *Server) renewRelay(rq *request) {
	var req signal.RelayRequest
	if !s.decode(rq, &req, nil, nil) {
		return
	}
	if len(s.cfg.RelayURLs) == 0 {
		s.refuse(rq.w, reasonBadRequest, errorReply(http.StatusNotFound, signal.MsgNoRelay))
		return
	}
	now := time.Now()
	user, limit, rp := s.checkRenewal(req.Renewal, now)
	if rp != nil {
		s.refuse(rq.w, reasonBadRequest, *rp)
		return
	}
	info := s.mintRelay(user, min(s.cfg.RelayCredentialTTL, limit.Sub(now)))
	if info == nil {
		s.refuse(rq.w, reasonBadRequest, errorReply(http.StatusServiceUnavailable, "cannot mint relay credentials"))
		return
	}
	info.Renewal = req.Renewal
	s.metrics.relayRenewals.Inc()
	writeReply(rq.w, okReply(signal.RelayResponse{Relay: info}))
}
