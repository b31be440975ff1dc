// Command fetch fetches paths from a peer with an ordinary *http.Client: symhttp.NewTransport runs each request on
// a stream of its own (sess.OpenStream), all at once, and the peer serves every stream with symhttp.Serve. Each
// body goes to stdout whole, in the order of the arguments.
//
// Run it against the serve example (or `p2phttp serve`), with a signalling server, in three terminals:
//
//	go run ./cmd/p2phttp signal --http 127.0.0.1:8080 --stun 127.0.0.1:3478
//	go run ./examples/serve -signal http://127.0.0.1:8080 -code 7-amber-otter
//	go run ./examples/fetch -signal http://127.0.0.1:8080 -code 7-amber-otter /hello /hello/again
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

func main() {
	signalURL := flag.String("signal", "http://127.0.0.1:8080", "signalling server URL")
	stunAddr := flag.String("stun", "", "STUN server HOST:PORT (default: the signalling host, port 3478)")
	udpAddr := flag.String("udp", ":0", "local UDP address")
	code := flag.String("code", "", "the code the serving peer printed, e.g. 7-amber-otter")
	flag.Parse()
	if *code == "" || flag.NArg() == 0 {
		log.Fatal("usage: fetch -code CODE [-signal URL] PATH...")
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
	client := &http.Client{Transport: symhttp.NewTransport(sess.OpenStream)}
	if err := fetchAll(ctx, client, flag.Args(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// fetchAll GETs every path from the peer concurrently and writes the bodies to w in order.
func fetchAll(ctx context.Context, client *http.Client, paths []string, w io.Writer) error {
	bodies := make([][]byte, len(paths))
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	for i, path := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies[i], errs[i] = fetch(ctx, client, path)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, b := range bodies {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// fetch GETs path from the peer and returns the whole body.
func fetch(ctx context.Context, client *http.Client, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://peer"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch: peer answered %s for %s", resp.Status, path)
	}
	return io.ReadAll(resp.Body)
}
