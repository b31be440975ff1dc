// Command symmetric is one program both peers run. Neither is configured as client or server: the symmetric socket
// takes the role of its first action. The peer given -ask writes a request first (WriteRequest), so its socket
// becomes the client; the other peer's first action is ReadRequest, so its socket becomes the server. One of them
// hosts the code (-host) and the other meets it, which has nothing to do with which becomes the client. Start them
// in either order.
//
// With a signalling server, in three terminals:
//
//	go run ./cmd/p2phttp signal --http 127.0.0.1:8080 --stun 127.0.0.1:3478
//	go run ./examples/symmetric -signal http://127.0.0.1:8080 -code 7-amber-otter -host
//	go run ./examples/symmetric -signal http://127.0.0.1:8080 -code 7-amber-otter -ask /time
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
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
	code := flag.String("code", "", "code shared with the peer, e.g. 7-amber-otter")
	hosting := flag.Bool("host", false, "host the code (the other peer meets it); which peer hosts has nothing to do with which becomes the HTTP client")
	ask := flag.String("ask", "", "write a request for `PATH` first, becoming the client; without it, answer the peer")
	flag.Parse()
	if *code == "" {
		log.Fatal("usage: symmetric -code CODE [-host] [-signal URL] [-ask PATH]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	cfg := rendezvous.Config{SignalURL: *signalURL, STUNAddr: *stunAddr, LocalAddr: *udpAddr, Code: *code}
	var sess *rendezvous.Session
	if *hosting {
		host, err := rendezvous.NewHost(ctx, cfg)
		if err != nil {
			log.Fatal(err)
		}
		defer host.Close()
		if sess, err = host.Accept(ctx); err != nil {
			log.Fatal(err)
		}
	} else {
		var err error
		if sess, err = rendezvous.Meet(ctx, cfg); err != nil {
			log.Fatal(err)
		}
	}
	defer sess.Close()
	stream := sess.Stream()
	stream.SetDeadline(time.Now().Add(time.Minute))
	if err := exchange(stream, *ask, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// exchange runs one HTTP exchange on conn. With a path to ask for, the first action is WriteRequest and the socket
// becomes the client; without, the first action is ReadRequest and it becomes the server.
func exchange(conn net.Conn, ask string, out io.Writer) error {
	s := symsock.New(conn)
	fmt.Fprintf(out, "socket undecided: read state %s, write state %s\n", s.ReadState(), s.WriteState())
	if ask != "" {
		req := symsock.Request{Method: http.MethodGet, Target: ask, Header: http.Header{"Host": {"peer"}}}
		if err := s.WriteRequest(&req); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote GET %s first: this peer is the client\n", ask)
		var res symsock.Response
		if err := s.ReadResponse(&res); err != nil {
			return err
		}
		for s.ReadState() != symsock.ReadEmpty { // a client's response ends in "empty"
			if err := s.ReadSome(&res); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "response: %d %s\n%s", res.Status, res.Reason, res.Body)
		return nil
	}
	var req symsock.Request
	if err := s.ReadRequest(&req); err != nil {
		return err
	}
	fmt.Fprintf(out, "read %s %s first: this peer is the server\n", req.Method, req.Target)
	for s.ReadState() != symsock.ReadFinished { // a server's request ends in "finished"
		if err := s.ReadSome(&req); err != nil {
			return err
		}
	}
	body := fmt.Sprintf("the server peer's clock says %s\n", time.Now().UTC().Format(time.RFC3339))
	if req.Target != "/time" {
		return s.WriteResponse(&symsock.Response{Status: http.StatusNotFound, Body: []byte("only /time here\n")})
	}
	return s.WriteResponse(&symsock.Response{Status: http.StatusOK, Body: []byte(body)})
}
