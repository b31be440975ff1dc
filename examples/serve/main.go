// Command serve hosts a code and serves an http.Handler to every guest that meets it over p2phttp (several at once):
// every stream a guest opens is answered by the handler through symhttp.Serve.
//
// Run it with a signalling server and the fetch example, in three terminals:
//
//	go run ./cmd/p2phttp signal --http 127.0.0.1:8080 --stun 127.0.0.1:3478
//	go run ./examples/serve -signal http://127.0.0.1:8080 -code 7-amber-otter
//	go run ./examples/fetch -signal http://127.0.0.1:8080 -code 7-amber-otter /hello
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

func main() {
	signalURL := flag.String("signal", "http://127.0.0.1:8080", "signalling server URL")
	stunAddr := flag.String("stun", "", "STUN server HOST:PORT (default: the signalling host, port 3478)")
	udpAddr := flag.String("udp", ":0", "local UDP address")
	code := flag.String("code", "", "code to host, e.g. 7-amber-otter (default: pick one and print it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	host, err := rendezvous.NewHost(ctx, rendezvous.Config{
		SignalURL: *signalURL, STUNAddr: *stunAddr, LocalAddr: *udpAddr, Code: *code,
		OnNewCode: func(code string, reason error) { fmt.Fprintf(os.Stderr, "serve: new code %s (%v)\n", code, reason) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	fmt.Fprintf(os.Stderr, "serve: hosting code %s\n", host.Code())

	mux := http.NewServeMux()
	hello := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, peer! you asked for %s\n", r.URL.Path)
	}
	mux.HandleFunc("GET /hello", hello)
	mux.HandleFunc("GET /hello/{more...}", hello)
	for {
		sess, err := host.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return // Ctrl-C
			}
			log.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "serve: guest %s connected, rtt %s\n", sess.Report().RemoteAddr, sess.Report().RTT)
		go func() {
			defer sess.Close()
			if err := serve(ctx, sess, mux); err != nil {
				log.Print(err)
			}
		}()
	}
}

// serve answers h on the first stream and on every further stream the peer opens, until the path or ctx ends.
func serve(ctx context.Context, sess *rendezvous.Session, h http.Handler) error {
	serveStream := func(c net.Conn) {
		defer c.Close()
		// The socket is undecided until its first action: ReadRequest, inside Serve, makes this end the server.
		if err := symhttp.Serve(symsock.New(c), h); err != nil {
			log.Printf("serve: stream ended: %v", err)
		}
	}
	go serveStream(sess.Stream())
	for {
		c, err := sess.AcceptStream(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C
			}
			return fmt.Errorf("serve: the peer left: %w", err)
		}
		go serveStream(c)
	}
}
