package signal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ErrNoRenewal: the relay credentials carry no renewal token (a host's, or a server without renewal), so only a
// new meeting gets fresh ones.
var ErrNoRenewal = errors.New("signal: relay credentials cannot be renewed")

// RenewRelay asks the server for fresh relay credentials in place of info, a guest's credentials, before they
// expire: the relay refuses to refresh an allocation, a permission or a channel with
// expired ones. The answer carries the same renewal token, for the next renewal. It retries transient failures
// until ctx ends. Errors: ErrNoRenewal, an *Error with Message MsgRenewalEnded once the server's limit on
// renewals passed (meet again for more), MsgBadRenewal, MsgNoRelay, or ctx's error.
func (c *Client) RenewRelay(ctx context.Context, info *RelayInfo) (*RelayInfo, error) {
	if info == nil || info.Renewal == "" {
		return nil, ErrNoRenewal
	}
	a, err := c.call(ctx, RelayPath, RelayRequest{Renewal: info.Renewal})
	if err != nil {
		return nil, err
	}
	if a.status != http.StatusOK {
		return nil, refusal(a)
	}
	var r RelayResponse
	if err := json.Unmarshal(a.body, &r); err != nil || r.Relay == nil || r.Relay.Username == "" {
		return nil, fmt.Errorf("signal: a malformed relay renewal answer: %.200q", a.body)
	}
	return r.Relay, nil
}
