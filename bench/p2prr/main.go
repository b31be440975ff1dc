// Command p2prr times small request/response round trips over one p2phttp stream between two peers behind NATs:
// the two meet through a signalling server with the library's public API (rendezvous.NewHost and rendezvous.Meet:
// key agreement, punching, sealed uTP), then the guest writes a message on the session's first stream, waits for
// the host to echo it, and times each round trip. No HTTP and no CLI sits in between, so the figure is the
// transport's own, comparable with one kernel TCP connection or one quic-go stream (bench/quicperf -rr). It is the
// p2phttp stream column of the latency comparison in bench/transportlab, not a tool for users.
//
// Run the host first, then the guest with the same code:
//
//	p2prr -role host -signal http://203.0.113.1:8080 -code 7-bench-rr
//	p2prr -role guest -signal http://203.0.113.1:8080 -code 7-bench-rr -n 200
//
// The host echoes until the guest ends the stream, then prints {"event":"done","echoed":N}. The guest makes one
// untimed round trip first (so the stream and path are warm, as a kept-alive connection is), then -n timed ones,
// and prints one JSON line: n, median_us, p90_us, min_us, max_us, and the route the path took. -reader-grace sets
// the transport's ReaderGrace on either side (negative: streams never read the socket themselves), to time its
// effect in the lab with a wrapper script passed as transportlab's -p2prr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/p2phttp/p2phttp/internal/pingpong"
	"github.com/p2phttp/p2phttp/rendezvous"
)

type options struct {
	role, signalURL, stunAddr, code string
	n, size                         int
	timeout, readerGrace            time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "host (echo) or guest (time the round trips)")
	flag.StringVar(&o.signalURL, "signal", "", "signalling server `URL`")
	flag.StringVar(&o.stunAddr, "stun", "", "STUN `HOST:PORT` (default: the signalling server's host, port 3478)")
	flag.StringVar(&o.code, "code", "", "the `CODE` both peers use")
	flag.IntVar(&o.n, "n", 200, "guest: timed round trips")
	flag.IntVar(&o.size, "size", 100, "bytes of each message and of its echo")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	flag.DurationVar(&o.readerGrace, "reader-grace", 0, "the transport's ReaderGrace (0: its default; negative: streams never read the socket themselves)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	out := json.NewEncoder(os.Stdout)
	if err := run(ctx, o, out); err != nil {
		_ = out.Encode(map[string]string{"event": "error", "error": err.Error()})
		os.Exit(1)
	}
}

// report is the guest's result line.
type report struct {
	Event string `json:"event"` // "done"
	pingpong.Result
	Route string `json:"route"`
}

func run(ctx context.Context, o options, out *json.Encoder) error {
	switch {
	case o.role != "host" && o.role != "guest":
		return errors.New("-role must be host or guest")
	case o.signalURL == "" || o.code == "":
		return errors.New("need -signal and -code")
	case o.n < 1:
		return errors.New("-n must be at least 1")
	case o.size < 1 || o.size > pingpong.MaxSize:
		return fmt.Errorf("-size must be 1-%d", pingpong.MaxSize)
	}
	cfg := rendezvous.Config{SignalURL: o.signalURL, STUNAddr: o.stunAddr, Code: o.code}
	cfg.Transport.ReaderGrace = o.readerGrace
	if o.role == "host" {
		return host(ctx, cfg, o, out)
	}
	return guest(ctx, cfg, o, out)
}

func host(ctx context.Context, cfg rendezvous.Config, o options, out *json.Encoder) error {
	h, err := rendezvous.NewHost(ctx, cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := out.Encode(map[string]string{"event": "hosting", "code": h.Code()}); err != nil {
		return err
	}
	sess, err := h.Accept(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	n, err := pingpong.Echo(sess.Stream(), o.size)
	if err != nil {
		return err
	}
	return out.Encode(map[string]any{"event": "done", "echoed": n})
}

func guest(ctx context.Context, cfg rendezvous.Config, o options, out *json.Encoder) error {
	sess, err := rendezvous.Meet(ctx, cfg)
	if err != nil {
		return err
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	st := sess.Stream()
	roundTrip, err := pingpong.Client(st, o.size)
	if err != nil {
		return err
	}
	if err := roundTrip(); err != nil {
		return fmt.Errorf("first round trip: %w", err)
	}
	res, err := pingpong.Time(o.n, roundTrip)
	if err != nil {
		return err
	}
	// End the stream so the host's echo loop ends cleanly, and give the FIN a moment to be acknowledged.
	if cw, ok := st.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = st.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = st.Read(make([]byte, 1))
	return out.Encode(report{Event: "done", Result: res, Route: rendezvous.DescribeRoute(sess.Route())})
}
