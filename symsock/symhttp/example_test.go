package symhttp_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/p2phttp/p2phttp/symsock"
	"github.com/p2phttp/p2phttp/symsock/symhttp"
)

// Serve an http.Handler on a socket: here each connection accepted on a loopback listener, answered for net/http's
// client. On a peer-to-peer stream the conn would come from the rendezvous instead.
func ExampleServe() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", r.PathValue("name"))
	})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = symhttp.Serve(symsock.New(conn), mux) }()
		}
	}()

	res, err := http.Get("http://" + ln.Addr().String() + "/hello/peer")
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Print(res.Status, " ", string(body))
	// Output: 200 OK hello, peer
}

// An http.Client to a peer: each request runs on a stream of its own, opened by the dial function (with p2phttp,
// a rendezvous.Session's OpenStream), and the peer serves every stream with Serve. Here a stream is one end of
// net.Pipe, served in the same program.
func ExampleNewTransport() {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the peer, you asked for %s", r.URL.Path)
	})
	openStream := func(ctx context.Context) (net.Conn, error) {
		mine, peers := net.Pipe()
		go func() { _ = symhttp.Serve(symsock.New(peers), hello) }() // the peer's side
		return mine, nil
	}

	client := &http.Client{Transport: symhttp.NewTransport(openStream)}
	res, err := client.Get("http://peer/hello")
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body) // read the whole body: it arrives as the peer sends it
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(body))
	// Output: 200 OK hello from the peer, you asked for /hello
}

// Use a socket as the transport of an http.Client: every request goes over that one connection, one at a time.
func ExampleNewRoundTripper() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s over %s", r.Method, r.URL.Path, r.Proto)
	}))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	s := symsock.New(conn)
	defer s.Close()
	client := &http.Client{Transport: symhttp.NewRoundTripper(s)}

	for _, path := range []string{"/a", "/b"} {
		res, err := client.Get("http://peer" + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Println(string(body))
	}
	// Output:
	// GET /a over HTTP/1.1
	// GET /b over HTTP/1.1
}
