package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

const serveHelp = `Usage: p2phttp serve [--dir DIR | --proxy URL] [flags]

Host a code and answer the HTTP requests of every guest that comes with it (p2phttp get or forward), from the files
under DIR (Range, If-Range with ETags, If-Modified-Since and directory listings; hidden files stay private unless
--hidden) or by proxying to a local web server. serve makes a short code and prints the command the other side should
run; to choose the code yourself, set P2PHTTP_CODE (a code given as an argument works too, but other users of this
machine can see it). Any number of guests may come at once, each over a path of its own, until Ctrl-C; every stream a
guest opens is served, within --max-streams at once per guest, and each request is logged as one line (method, path,
status, bytes, time). After 3 guests fail the key confirmation (a wrong code, or someone guessing), serve retires the
code and prints a new one.

Examples:
  p2phttp serve --dir ./public
  P2PHTTP_CODE=7-amber-otter p2phttp serve --dir . --signal http://signal.example.org:8080
  p2phttp serve --proxy http://127.0.0.1:3000 --signal https://signal.example.org
  P2PHTTP_SIGNAL=http://signal.example.org:8080 p2phttp serve --dir ~/photos --max-streams 8 -v
`

// shutdownGrace is how long Ctrl-C lets requests in flight finish.
const shutdownGrace = 5 * time.Second

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("serve", serveHelp)
	var pf peerFlags
	pf.register(fs, env, 0)
	var lim serveLimits
	lim.register(fs)
	dir := fs.String("dir", "", "serve the files under `DIR`")
	proxy := fs.String("proxy", "", "proxy requests to the local web server at `URL`")
	hidden := fs.Bool("hidden", false, "with --dir, also list and serve hidden files (names starting with a dot)")
	accessLines := fs.Bool("access-log", true, "one line per request on stderr: method, path, status, bytes, time (=false: none)")
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
	if err := lim.check(); err != nil {
		return err
	}
	log := pf.logger(env)
	h, what, err := newHandler(*dir, *proxy, *hidden, log)
	if err != nil {
		return err
	}
	// Requests of several peers print at once, above a status line on a terminal.
	status := newServeStatus(env.stderr)
	sctx, stopStatus := context.WithCancel(ctx)
	defer stopStatus()
	go status.run(sctx)
	env = &cliEnv{stdout: env.stdout, stderr: status, stdin: env.stdin, getenv: env.getenv}
	code := ""
	switch {
	case len(pos) == 1:
		if code, err = parseCode(pos[0]); err != nil {
			return err
		}
		warnCodeInArgs(env)
	case env.getenv(codeEnv) != "":
		if code, err = parseCode(env.getenv(codeEnv)); err != nil {
			return err
		}
	}
	// A code is printed only once the signalling server is known to answer: a code for a server that is not there
	// would send the other side waiting in vain.
	if err := pf.probeSignal(ctx); err != nil {
		return err
	}
	announce := func(code string) {
		fmt.Fprintf(env.stderr, "p2phttp: serving %s with code %s\n", what, code)
		fmt.Fprintf(env.stderr, "On the other machine run one of these, and type the code when it asks:\n  %s\n  %s\n",
			pf.otherSide("get", "/"), pf.otherSide("forward", "")+"    # for curl and browsers")
	}
	opts := serveOptions{limits: lim, status: status}
	if *accessLines {
		opts.accessLog = env.stderr
	}
	host, err := pf.host(ctx, env, code, announce, log)
	if err != nil {
		return err
	}
	announce(host.Code())
	rl := &requestLog{h: h}
	return hostLoop(ctx, env, &pf, host, func() { rl.drain(shutdownGrace) },
		func(s *rendezvous.Session) sessionStats { return serveSession(ctx, env, s, rl, opts, log) })
}

// serveOptions are what serve applies to each peer's streams.
type serveOptions struct {
	limits    serveLimits
	accessLog io.Writer    // nil: no line per request
	status    *serveStatus // the status line on a terminal
}

// otherSide is the command line the other peer should type to reach us; it asks for the code.
func (p *peerFlags) otherSide(cmd, path string) string {
	parts := []string{"p2phttp", cmd}
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

// sessionStats is what one peer got.
type sessionStats struct {
	requests int64
	bytes    int64 // response body bytes
}

// serveSession answers requests on the first stream and on every stream the peer opens, until the path ends, with
// opts.limits applied to this peer alone.
func serveSession(ctx context.Context, env *cliEnv, sess *rendezvous.Session, rl *requestLog, opts serveOptions, log *slog.Logger) sessionStats {
	peer := sess.Report().RemoteAddr.String()
	al := &accessLog{h: rl, out: opts.accessLog, status: opts.status, peer: peer}
	lim := opts.limits
	srv := &symhttp.Server{Handler: al, Logger: log, ReadHeaderTimeout: lim.readHeaderTimeout, IdleTimeout: lim.idleTimeout}
	// The first stream exists as soon as the peers meet, before the other side has anything to ask (forward keeps it
	// for the first local connection), so its first request may come at any time.
	firstSrv := *srv
	firstSrv.ReadHeaderTimeout = 0
	// Not ctx: on Ctrl-C hostLoop lets requests in flight finish, then closes the session, which ends these. When
	// the path ends, cancelling sctx cancels the requests of its streams (a proxied request waiting for a slow
	// backend, say), which no read or write would notice.
	actx := context.WithoutCancel(ctx)
	sctx, cancelStreams := context.WithCancel(actx)
	defer cancelStreams()
	slots := make(chan struct{}, lim.maxStreams)
	var wg sync.WaitGroup
	serveStream := func(srv *symhttp.Server, c net.Conn) {
		defer wg.Done()
		defer func() { <-slots }()
		if err := srv.Serve(sctx, symsock.New(c)); err != nil && ctx.Err() == nil && sctx.Err() == nil {
			log.Debug("stream ended", "peer", peer, "err", err)
		}
	}
	slots <- struct{}{}
	wg.Add(1)
	go serveStream(&firstSrv, sess.Stream())
	refused := 0
	closing := make(chan struct{}, lim.maxStreams)
	for {
		c, err := sess.AcceptStream(actx)
		if err != nil {
			log.Debug("no more streams from the peer", "peer", peer, "err", err)
			break
		}
		select {
		case slots <- struct{}{}:
			wg.Add(1)
			go serveStream(srv, c)
		default:
			// Close waits for the peer to acknowledge; the next stream need not wait for that, up to a point.
			select {
			case closing <- struct{}{}:
				go func() {
					c.Close()
					<-closing
				}()
			default:
				c.Close()
			}
			if refused++; refused == 1 {
				fmt.Fprintf(env.stderr, "p2phttp: peer %s opened more than %d streams at once; refusing the extra ones (--max-streams)\n",
					peer, lim.maxStreams)
			}
		}
	}
	// The path is gone: closing the session ends the streams still being served.
	sess.Close()
	cancelStreams()
	wg.Wait()
	return sessionStats{requests: al.requests.Load(), bytes: al.bytes.Load()}
}
