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
	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

// A host meets a guest with a code and they speak HTTP over the first stream. Neither is configured as client or
// server: the host's first action is to read a request (inside symhttp.Serve), so its socket becomes the server; the
// guest's is to write one (through the RoundTripper), so its socket becomes the client.
func Example() {
	// A signalling server with STUN on loopback; in real life, `p2phttp signal` on a host both peers reach.
	srv, err := rendezvoustest.NewServer(rendezvoustest.Unlimited())
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	config := rendezvous.Config{SignalURL: srv.URL, STUNAddr: srv.STUNAddr, LocalAddr: "127.0.0.1:0"}

	// The host picks a code (e.g. "7-amber-otter") and answers every guest that comes with it.
	host, err := rendezvous.NewHost(ctx, config)
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			sess, err := host.Accept(ctx)
			if err != nil {
				return // host closed
			}
			go symhttp.Serve(symsock.New(sess.Stream()), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "hello from the host, you asked for %s", r.URL.Path)
			}))
		}
	}()

	// A guest, on the other machine, typed the code: meet, then write a request first.
	config.Code = host.Code()
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
	fmt.Println("role:", sess.Report().Role, "direct:", sess.Report().Direct)
	// Output:
	// 200 OK hello from the host, you asked for /greeting
	// role: guest direct: true
}
