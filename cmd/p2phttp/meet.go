package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/signal"
)

// parseCode checks a code typed on the command line, so a typo is a usage error before any network traffic.
func parseCode(s string) (string, error) {
	c, err := signal.ParseCode(s)
	if err != nil {
		return "", usagef("%s", strings.TrimPrefix(err.Error(), "signal: "))
	}
	return c.String(), nil
}

// meet meets the host of code as a guest and prints the path line (and the verifier with --verify); a failure comes
// back as a meetError that explain turns into advice.
func (p *peerFlags) meet(ctx context.Context, env *cliEnv, code string, log *slog.Logger) (*rendezvous.Session, error) {
	code, err := parseCode(code)
	if err != nil {
		return nil, err
	}
	sess, err := rendezvous.Meet(ctx, p.config(code, log))
	if err != nil {
		return nil, &meetError{flags: p, code: code, err: err}
	}
	fmt.Fprintf(env.stderr, "p2phttp: %s\n", describePath(sess.Report()))
	p.printVerifier(env, sess.Report())
	go watchRoute(env, sess, "")
	return sess, nil
}

// watchRoute prints a line (after prefix) each time the session's path moves from the relay to a direct route or
// back, until the session ends.
func watchRoute(env *cliEnv, sess *rendezvous.Session, prefix string) {
	cur := sess.Report().Route // what the connected line said; the path may have moved since
	for {
		changed := sess.RouteChanged()
		if next := sess.Route(); next.Since != cur.Since {
			if line := describeRouteChange(cur, next); line != "" {
				fmt.Fprintf(env.stderr, "p2phttp: %s%s\n", prefix, line)
			}
			cur = next
		}
		select {
		case <-changed:
		case <-sess.Done():
			return
		}
	}
}

// printVerifier prints the string both sides derive from the session key, for people who compare it aloud, and the
// cipher that seals the path.
func (p *peerFlags) printVerifier(env *cliEnv, r rendezvous.Report) {
	if p.verify {
		fmt.Fprintf(env.stderr, "p2phttp: verify with the other side (%s): %s\n", r.Role, r.Verifier)
		fmt.Fprintf(env.stderr, "p2phttp: every datagram of the path is sealed with %s\n", r.Cipher)
	}
}

// host starts hosting code (a fresh one when empty). Every change of code is printed with the command the other
// side should run, so `serve` stays reachable when a guessed-at code is retired.
func (p *peerFlags) host(ctx context.Context, env *cliEnv, code string, announce func(code string), log *slog.Logger) (*rendezvous.Host, error) {
	cfg := p.config(code, log)
	cfg.PeerTimeout = 0
	cfg.OnNewCode = func(code string, reason error) {
		if errors.Is(reason, signal.ErrCodeRetired) {
			fmt.Fprintf(env.stderr, "p2phttp: too many guests failed the key confirmation (a wrong code, or someone guessing): "+
				"that code is retired, the new code is %s\n", code)
		} else {
			fmt.Fprintf(env.stderr, "p2phttp: that nameplate was taken; the new code is %s\n", code)
		}
		announce(code)
	}
	// Not ctx: on Ctrl-C hostLoop lets requests in flight finish before it closes the host and its sessions.
	h, err := rendezvous.NewHost(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, &meetError{flags: p, code: code, err: err}
	}
	return h, nil
}

// hostLoop accepts guests until ctx ends, serving each in a goroutine of its own while it goes on accepting. On
// Ctrl-C it lets requests in flight finish (drain), then closes the sessions and the host.
func hostLoop(ctx context.Context, env *cliEnv, pf *peerFlags, h *rendezvous.Host, drain func(),
	serve func(*rendezvous.Session) sessionStats) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	sessions := map[*rendezvous.Session]struct{}{}
	defer func() {
		drain()
		mu.Lock()
		for s := range sessions {
			s.Close()
		}
		mu.Unlock()
		wg.Wait()
		h.Close()
	}()
	for {
		sess, err := h.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &meetError{flags: pf, code: h.Code(), err: err}
		}
		r := sess.Report()
		fmt.Fprintf(env.stderr, "p2phttp: guest %s %s\n", r.RemoteAddr, describePath(r))
		pf.printVerifier(env, r)
		go watchRoute(env, sess, fmt.Sprintf("guest %s ", r.RemoteAddr))
		mu.Lock()
		sessions[sess] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			st := serve(sess)
			mu.Lock()
			delete(sessions, sess)
			mu.Unlock()
			sess.Close()
			if ctx.Err() == nil {
				took := time.Since(start)
				fmt.Fprintf(env.stderr, "p2phttp: guest %s left after %d request(s), %s sent in %s (%s/s)\n",
					r.RemoteAddr, st.requests, formatBytes(st.bytes), roundDuration(took), formatBytes(rate(st.bytes, took)))
			}
		}()
	}
}
