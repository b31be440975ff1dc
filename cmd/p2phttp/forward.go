package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

const forwardHelp = `Usage: p2phttp forward [--listen ADDR] [flags]

Meet the peer that runs "p2phttp serve" and open a local HTTP endpoint for curl and browsers. Each local TCP
connection is carried to the peer over a stream of its own, so several can run at once; the peer parses and answers
the HTTP. Runs until Ctrl-C (exit 130) or until the peer leaves (exit 1). The code comes from $P2PHTTP_CODE, else
forward asks for it on the terminal (Tab completes the words), else it reads a line from stdin; "forward CODE" works
too, but other users of this machine can see a code on the command line.

Examples:
  p2phttp forward                                    # type the code; then: curl http://127.0.0.1:8000/
  P2PHTTP_CODE=7-amber-otter p2phttp forward --listen 127.0.0.1:9000 --signal http://signal.example.org:8080
  curl -r 0-99 http://127.0.0.1:8000/big.iso         # Range requests pass through untouched
`

// Timeouts of forward, named so they are easy to find.
const (
	openStreamTimeout = 10 * time.Second // opening a stream for a new local connection
	lingerAfterPeer   = 5 * time.Second  // a local client may keep reading this long after the peer's side ended
)

// errPeerLeft ends forward when the path to the peer dies.
var errPeerLeft = errors.New("the peer left")

func runForward(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("forward", forwardHelp)
	var pf peerFlags
	pf.register(fs, env, 2*time.Minute)
	listen := fs.String("listen", "127.0.0.1:8000", "local TCP `ADDR` to accept connections on")
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("expected no argument (or one CODE), got %q", pos)
	}
	if err := pf.check(); err != nil {
		return err
	}
	// Listen before meeting, so a busy port fails at once rather than after the peer came.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %s; pick another address with --listen", *listen, rootCause(err))
	}
	defer ln.Close()

	code, err := peerCode(env, strings.Join(pos, ""))
	if err != nil {
		return err
	}
	log := pf.logger(env)
	if err := pf.probeSignal(ctx); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "p2phttp: waiting for the peer with code %s at %s\n", escapeText(code), pf.signalURL)
	sess, err := pf.meet(ctx, env, code, log)
	if err != nil {
		return err
	}
	defer sess.Close()
	fmt.Fprintf(env.stderr, "p2phttp: forwarding http://%s to the peer; try: curl http://%s/\n", ln.Addr(), ln.Addr())

	var stopErr error
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-sess.Done():
			stopErr = fmt.Errorf("%w: %s", errPeerLeft, rootCause(sess.Err()))
		}
		close(stopped)
		ln.Close()
	}()

	first := make(chan net.Conn, 1)
	first <- sess.Stream()
	var wg sync.WaitGroup
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var stream net.Conn
			select {
			case stream = <-first:
			default:
				octx, cancel := context.WithTimeout(ctx, openStreamTimeout)
				stream, err = sess.OpenStream(octx)
				cancel()
				if err != nil {
					log.Warn("cannot open a stream to the peer", "err", err)
					c.Close()
					return
				}
			}
			pipe(c, stream, log)
		}()
	}
	<-stopped
	// Let connections in flight finish on Ctrl-C; when the peer is gone they end on their own.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
	}
	if stopErr == nil {
		return ctx.Err() // Ctrl-C: report exits 130
	}
	return stopErr
}

// pipe carries bytes both ways between a local connection and a stream to the peer until both directions end.
func pipe(local, stream net.Conn, log *slog.Logger) {
	defer local.Close()
	defer stream.Close()
	toPeer := make(chan error, 1)
	go func() {
		_, err := io.Copy(stream, local)
		// The local client is done sending. Without a half-close on the stream, closing it is the only way to tell
		// the peer, which would otherwise keep waiting for the next request.
		if cw, ok := stream.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			stream.Close()
		}
		toPeer <- err
	}()
	_, err := io.Copy(local, stream)
	log.Debug("peer side of a forwarded connection ended", "err", err)
	// The peer is done (e.g. it answered Connection: close): send FIN so the local client reads everything, and give
	// it a moment to close its side.
	if tc, ok := local.(*net.TCPConn); ok {
		tc.CloseWrite()
		local.SetReadDeadline(time.Now().Add(lingerAfterPeer))
		<-toPeer
	}
}
