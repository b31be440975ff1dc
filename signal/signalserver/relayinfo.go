package signalserver

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"

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
	sum := sha256.Sum256([]byte("p2phttp relay user\x00" + peerID))
	cred, err := relay.NewCredentials(s.cfg.RelaySecret, hex.EncodeToString(sum[:12]), s.cfg.RelayCredentialTTL)
	if err != nil {
		s.log.Warn("signalserver: minting relay credentials", "err", err)
		return nil
	}
	return &signal.RelayInfo{URLs: slices.Clone(s.cfg.RelayURLs), Username: cred.Username, Password: cred.Password, Expires: cred.Expires}
}
