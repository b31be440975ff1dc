package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/symsock"
)

const serveHelp = `Usage: p2phttp serve [--dir DIR | --proxy URL] [flags] [CODE]

Host CODE and answer the HTTP requests of every guest that comes with it (p2phttp get or forward), from the files
under DIR (Range, If-Modified-Since and directory listings) or by proxying to a local web server. Without CODE, serve
makes a short one and prints the command the other side should run. Any number of guests may come at once, each over a
path of its own, until Ctrl-C. After 3 guests fail the key confirmation (a wrong code, or someone guessing), serve
retires the code and prints a new one.

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
		if code, err = parseCode(pos[0]); err != nil {
			return err
		}
	}
	announce := func(code string) {
		fmt.Fprintf(env.stderr, "p2phttp: serving %s with code %s\n", what, code)
		fmt.Fprintf(env.stderr, "On the other machine run:\n  %s\nor, for curl and browsers:\n  %s\n",
			pf.otherSide("get", code, "/"), pf.otherSide("forward", code, ""))
	}
	host, err := pf.host(ctx, env, code, announce, log)
	if err != nil {
		return err
	}
	if code == "" {
		announce(host.Code())
	} else {
		fmt.Fprintf(env.stderr, "p2phttp: waiting for guests with code %s\n", host.Code())
	}
	rl := &requestLog{h: h, log: log}
	return hostLoop(ctx, env, &pf, host, func() { rl.drain(shutdownGrace) },
		func(s *rendezvous.Session) int64 { return serveSession(ctx, s, rl, log) })
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

// serveSession answers requests on the first stream and on every stream the peer opens, until the path ends. It
// returns the number of requests served.
func serveSession(ctx context.Context, sess *rendezvous.Session, rl *requestLog, log *slog.Logger) int64 {
	counted := &requestLog{h: rl, log: slog.New(slog.DiscardHandler)}
	var wg sync.WaitGroup
	serveStream := func(c net.Conn) {
		defer wg.Done()
		defer c.Close()
		if err := symsock.Serve(symsock.New(c), counted); err != nil && ctx.Err() == nil {
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
