package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/p2phttp/p2phttp/rendezvous"
)

// probeSignal checks that the signalling server answers its health check, within rendezvous.DefaultServerTimeout. A
// failure is a meetError that explain turns into advice.
func (p *peerFlags) probeSignal(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, rendezvous.DefaultServerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, strings.TrimSuffix(p.signalURL, "/")+"/healthz", nil)
	if err != nil {
		return usagef("--signal %q: %s", p.signalURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /healthz answered %s, not 200 OK: not a p2phttp signalling server?", escapeText(resp.Status))
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &meetError{flags: p, err: &rendezvous.Error{Step: rendezvous.StepSignal, Reason: rendezvous.ErrSignalUnreachable, Err: err}}
	}
	return nil
}
