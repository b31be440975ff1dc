package rendezvous_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/rendezvous/rendezvoustest"
	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

// Two peers meet with a room code and speak HTTP over the first stream. Neither is configured as client or server:
// peer B's first action is to read a request (inside symhttp.Serve), so its socket becomes the server; peer A's is to
// write one (through the RoundTripper), so its socket becomes the client.
func Example() {
	// A signalling server with STUN on loopback; in real life, `p2phttp signal` on a host both peers reach.
	srv, err := rendezvoustest.NewServer(signal.ServerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := signal.NewCode() // e.g. "7-amber-otter": tell it to the other peer
	config := rendezvous.Config{SignalURL: srv.URL, STUNAddr: srv.STUNAddr, Code: code, LocalAddr: "127.0.0.1:0"}

	// Peer B, on the other machine: answer requests.
	go func() {
		sess, err := rendezvous.Meet(ctx, config)
		if err != nil {
			log.Fatal(err)
		}
		defer sess.Close()
		symhttp.Serve(symsock.New(sess.Stream()), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from B, you asked for %s", r.URL.Path)
		}))
	}()

	// Peer A: meet, then write a request first.
	sess, err := rendezvous.Meet(ctx, config)
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	client := &http.Client{Transport: symhttp.NewRoundTripper(symsock.New(sess.Stream()))}
	resp, err := client.Get("http://peer/greeting")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, string(body))
	fmt.Println("direct:", sess.Report().Direct)
	// Output:
	// 200 OK hello from B, you asked for /greeting
	// direct: true
}
