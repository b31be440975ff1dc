package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

const serveHelp = `Usage: p2phttp serve [--dir DIR | --proxy URL] [flags] [CODE]

Wait for a peer holding CODE and answer its HTTP requests, from the files under DIR (Range, If-Modified-Since and
directory listings) or by proxying to a local web server. Without CODE, serve makes a short one and prints the command
the other side should run. Every stream the peer opens is served; when a peer leaves, serve waits for the next one
with the same code, until Ctrl-C.

Examples:
  p2phttp serve --dir ./public
  p2phttp serve --dir . 7-amber-otter --signal http://signal.example.org:8080
  p2phttp serve --proxy http://127.0.0.1:3000 --signal https://signal.example.org
  P2PHTTP_SIGNAL=http://signal.example.org:8080 p2phttp serve --dir ~/photos -v
`

// shutdownGrace is how long Ctrl-C lets requests in flight finish.
const shutdownGrace = 5 * time.Second

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("serve", serveHelp)
	var pf peerFlags
	pf.register(fs, env, 0)
	dir := fs.String("dir", "", "serve the files under `DIR`")
	proxy := fs.String("proxy", "", "proxy requests to the local web server at `URL`")
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("expected at most one CODE, got %q", pos)
	}
	if err := pf.check(); err != nil {
		return err
	}
	log := pf.logger(env)
	h, what, err := newHandler(*dir, *proxy, log)
	if err != nil {
		return err
	}
	code := ""
	if len(pos) == 1 {
		code = pos[0]
	} else {
		code = signal.NewCode()
		fmt.Fprintf(env.stderr, "p2phttp: serving %s with code %s\n", what, code)
		fmt.Fprintf(env.stderr, "On the other machine run:\n  %s\nor, for curl and browsers:\n  %s\n",
			pf.otherSide("get", code, "/"), pf.otherSide("forward", code, ""))
	}
	rl := &requestLog{h: h, log: log}
	return serveLoop(ctx, env, &pf, code, rl, log)
}

// otherSide is the command line the other peer should type to reach us.
func (p *peerFlags) otherSide(cmd, code, path string) string {
	parts := []string{"p2phttp", cmd, code}
	if path != "" {
		parts = append(parts, path)
	}
	if p.signalURL != defaultSignalURL {
		parts = append(parts, "--signal", p.signalURL)
	}
	if p.stunAddr != "" {
		parts = append(parts, "--stun", p.stunAddr)
	}
	return strings.Join(parts, " ")
}

// serveLoop meets peers with code one after another and serves each in the background, until ctx ends. It re-joins
// the room as soon as a meeting succeeds, so the next peer (or the same one, reconnecting) finds us waiting.
func serveLoop(ctx context.Context, env *cliEnv, pf *peerFlags, code string, rl *requestLog, log *slog.Logger) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	sessions := map[*rendezvous.Session]struct{}{}
	defer func() {
		rl.drain(shutdownGrace)
		mu.Lock()
		for s := range sessions {
			s.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()

	met := 0
	backoff := time.Second
	for {
		fmt.Fprintf(env.stderr, "p2phttp: waiting for a peer with code %s\n", code)
		sess, err := pf.meet(ctx, env, code, log)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			met++
			backoff = time.Second
		case met > 0 || errors.Is(err, rendezvous.ErrPunchFailed) || errors.Is(err, rendezvous.ErrStreamFailed):
			// A server that already served peers keeps going through a server restart or a peer that failed to
			// punch; the first meeting's failures (a wrong URL, say) are reported and end the command.
			fmt.Fprintf(env.stderr, "p2phttp: %s (retrying in %s)\n", explain(err), backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		default:
			return err
		}
		mu.Lock()
		sessions[sess] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := serveSession(ctx, sess, rl, log)
			mu.Lock()
			delete(sessions, sess)
			mu.Unlock()
			sess.Close()
			if ctx.Err() == nil {
				fmt.Fprintf(env.stderr, "p2phttp: peer %s left after %d request(s)\n", sess.Report().RemoteAddr, n)
			}
		}()
	}
}

// serveSession answers requests on the first stream and on every stream the peer opens, until the path ends. It
// returns the number of requests served.
func serveSession(ctx context.Context, sess *rendezvous.Session, rl *requestLog, log *slog.Logger) int64 {
	counted := &requestLog{h: rl, log: slog.New(slog.DiscardHandler)}
	var wg sync.WaitGroup
	serveStream := func(c net.Conn) {
		defer wg.Done()
		defer c.Close()
		if err := symhttp.Serve(symsock.New(c), counted); err != nil && ctx.Err() == nil {
			log.Debug("stream ended", "err", err)
		}
	}
	wg.Add(1)
	go serveStream(sess.Stream())
	// Not ctx: on Ctrl-C serveLoop lets requests in flight finish, then closes the session, which ends this loop.
	actx := context.WithoutCancel(ctx)
	for {
		c, err := sess.AcceptStream(actx)
		if err != nil {
			log.Debug("no more streams from the peer", "err", err)
			break
		}
		wg.Add(1)
		go serveStream(c)
	}
	// The path is gone: closing the session ends the streams still being served.
	sess.Close()
	wg.Wait()
	return counted.served.Load()
}
