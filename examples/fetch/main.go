// Command fetch fetches a path from a peer with net/http's client: the request goes over the symmetric socket, which
// becomes the client because it writes the first request.
//
// Run it against the serve example (or `p2phttp serve`), with a signalling server, in three terminals:
//
//	go run ./cmd/p2phttp signal --http 127.0.0.1:8080 --stun 127.0.0.1:3478
//	go run ./examples/serve -signal http://127.0.0.1:8080 -code 7-amber-otter
//	go run ./examples/fetch -signal http://127.0.0.1:8080 -code 7-amber-otter /hello
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/symsock"
)

func main() {
	signalURL := flag.String("signal", "http://127.0.0.1:8080", "signalling server URL")
	stunAddr := flag.String("stun", "", "STUN server HOST:PORT (default: the signalling host, port 3478)")
	udpAddr := flag.String("udp", ":0", "local UDP address")
	code := flag.String("code", "", "the code the serving peer printed, e.g. 7-amber-otter")
	flag.Parse()
	if *code == "" || flag.NArg() != 1 {
		log.Fatal("usage: fetch -code CODE [-signal URL] PATH")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	sess, err := rendezvous.Meet(ctx, rendezvous.Config{
		SignalURL: *signalURL, STUNAddr: *stunAddr, LocalAddr: *udpAddr, Code: *code,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	if err := fetch(ctx, sess, flag.Arg(0), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// fetch GETs path from the peer over the session's first stream and copies the body to w.
func fetch(ctx context.Context, sess *rendezvous.Session, path string, w io.Writer) error {
	client := &http.Client{Transport: symsock.NewRoundTripper(symsock.New(sess.Stream()))}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://peer"+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch: peer answered %s", resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
