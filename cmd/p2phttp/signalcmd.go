package main

import (
	"context"
	"fmt"
	"net"

	"github.com/p2phttp/p2phttp/signal"
)

const signalHelp = `Usage: p2phttp signal [--http ADDR] [--stun ADDR] [flags]

Run the signalling server that peers meet at: an HTTP/JSON API on --http and a STUN responder on UDP --stun, which
peers use to learn their public address. It never sees room codes or the peers' traffic, only a room ID derived from
the code and the candidate addresses. Runs until Ctrl-C, then shuts down gracefully.

Examples:
  p2phttp signal                                   # HTTP on :8080, STUN on :3478
  p2phttp signal --http 127.0.0.1:9000 --stun 127.0.0.1:9478 -v
  # peers then pass: --signal http://THIS-HOST:8080   (STUN defaults to THIS-HOST:3478)
`

func runSignal(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet("signal", signalHelp)
	var lf logFlags
	lf.register(fs)
	httpAddr := fs.String("http", ":8080", "TCP `ADDR` for the HTTP API")
	stunAddr := fs.String("stun", ":3478", "UDP `ADDR` for the STUN responder")
	pos, err := fs.parse(env, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	for _, a := range []struct{ flag, addr string }{{"--http", *httpAddr}, {"--stun", *stunAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return usagef("%s %q is not HOST:PORT (or :PORT)", a.flag, a.addr)
		}
	}
	log := lf.logger(env)
	srv := signal.NewServer(signal.ServerConfig{Logger: log})
	fmt.Fprintf(env.stderr, "p2phttp: signalling server on http %s, STUN on udp %s; stop with Ctrl-C\n", *httpAddr, *stunAddr)
	if err := srv.ListenAndServe(ctx, *httpAddr, *stunAddr); err != nil && ctx.Err() == nil {
		return fmt.Errorf("signalling server: %s; is another server using the port? pick others with --http and --stun", err)
	}
	fmt.Fprintln(env.stderr, "p2phttp: signalling server stopped")
	return nil
}
