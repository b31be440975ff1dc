package relay

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pion/turn/v4"
)

// Credentials let the peers of one meeting allocate on any relay of the
// deployment until they expire. They are the usual TURN REST credentials:
// the username is "<expiry unix time>:<user>", the password base64 of
// HMAC-SHA1(secret, username), so no relay needs to be told about them.
type Credentials struct {
	Username string    `json:"username"`
	Password string    `json:"password"`
	Expires  time.Time `json:"expires"`
}

// NewCredentials mints credentials for user (say, a meeting ID) that expire
// after ttl (DefaultCredentialTTL when zero or less).
func NewCredentials(secret []byte, user string, ttl time.Duration) (Credentials, error) {
	if len(secret) == 0 {
		return Credentials{}, ErrNoSecret
	}
	if ttl <= 0 {
		ttl = DefaultCredentialTTL
	}
	name, pass, err := turn.GenerateLongTermTURNRESTCredentials(string(secret), user, ttl)
	if err != nil {
		return Credentials{}, fmt.Errorf("relay: minting credentials: %w", err)
	}
	exp, err := strconv.ParseInt(strings.SplitN(name, ":", 2)[0], 10, 64)
	if err != nil {
		return Credentials{}, fmt.Errorf("relay: minted username %q: %w", name, err)
	}
	return Credentials{Username: name, Password: pass, Expires: time.Unix(exp, 0)}, nil
}
