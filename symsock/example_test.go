package symsock_test

import (
	"bufio"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/p2phttp/p2phttp/symsock"
)

// A server answers one request read from the connection; its first ReadRequest makes the socket the server.
func ExampleSocket_ReadRequest() {
	conn, peer := net.Pipe()
	defer peer.Close()
	go func() {
		fmt.Fprint(peer, "POST /echo HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n\r\nhello")
	}()

	s := symsock.New(conn)
	defer s.Close()
	var req symsock.Request
	if err := s.ReadRequest(&req); err != nil {
		fmt.Println(err)
		return
	}
	for s.ReadState() != symsock.ReadFinished {
		if err := s.ReadSome(&req); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Printf("%s %s %q\n", req.Method, req.Target, req.Body)

	go func() {
		res := symsock.Response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: req.Body}
		_ = s.WriteResponse(&res)
	}()
	reply := make([]byte, 128)
	n, _ := peer.Read(reply)
	fmt.Print(strings.ReplaceAll(string(reply[:n]), "\r\n", "\n"))
	// Output:
	// POST /echo "hello"
	// HTTP/1.1 200 OK
	// Content-Type: text/plain
	// Content-Length: 5
	//
	// hello
}

// A client streams a chunked request with a trailer and reads the response; its first write makes the socket the
// client. Here the other end is a symsock server too: the socket is symmetric.
func ExampleSocket_WriteRequestMetadata() {
	a, b := net.Pipe()
	client, server := symsock.New(a), symsock.New(b)
	defer client.Close()
	defer server.Close()

	go func() {
		var req symsock.Request
		if err := server.ReadRequest(&req); err != nil {
			return
		}
		for server.ReadState() != symsock.ReadFinished {
			if err := server.ReadSome(&req); err != nil {
				return
			}
		}
		body := fmt.Sprintf("got %q, checksum %s", req.Body, req.Trailer.Get("X-Checksum"))
		_ = server.WriteResponse(&symsock.Response{Status: 200, Body: []byte(body)})
	}()

	req := symsock.Request{Method: "PUT", Target: "/file", Header: http.Header{"Host": {"peer"}}}
	if err := client.WriteRequestMetadata(&req); err != nil {
		fmt.Println(err)
		return
	}
	for _, piece := range []string{"symmetric ", "sockets"} {
		req.Body = []byte(piece)
		if err := client.Write(&req); err != nil {
			fmt.Println(err)
			return
		}
	}
	req.Trailer = http.Header{"X-Checksum": {"42"}}
	if err := client.WriteTrailers(&req); err != nil {
		fmt.Println(err)
		return
	}

	var res symsock.Response
	if err := client.ReadResponse(&res); err != nil {
		fmt.Println(err)
		return
	}
	for client.ReadState() != symsock.ReadEmpty {
		if err := client.ReadSome(&res); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(res.Status, res.Reason)
	fmt.Println(string(res.Body))
	// Output:
	// 200 OK
	// got "symmetric sockets", checksum 42
}

// Switch protocols: the server answers an Upgrade request with 101, then both ends take the stream with Hijack
// and speak the new protocol on it (here, plain lines). The bytes the client sent right behind its request are
// not lost: the hijacked connection yields them first.
func ExampleSocket_Hijack() {
	clientConn, serverConn := net.Pipe()
	client, server := symsock.New(clientConn), symsock.New(serverConn)

	go func() {
		var req symsock.Request
		if err := server.ReadRequest(&req); err != nil || !symsock.UpgradeDesired(&req) {
			log.Fatal("no upgrade request: ", err)
		}
		res := symsock.Response{Status: 101, Header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"lines"}}}
		if err := server.WriteResponse(&res); err != nil {
			log.Fatal(err)
		}
		conn, err := server.Hijack()
		if err != nil {
			log.Fatal(err)
		}
		line, _ := bufio.NewReader(conn).ReadString('\n')
		fmt.Fprintf(conn, "server got %q\n", line)
	}()

	req := symsock.Request{Method: "GET", Target: "/", Header: http.Header{
		"Host": {"peer"}, "Connection": {"Upgrade"}, "Upgrade": {"lines"},
	}}
	if err := client.WriteRequest(&req); err != nil {
		log.Fatal(err)
	}
	var res symsock.Response
	if err := client.ReadResponse(&res); err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Header.Get("Upgrade"))
	conn, err := client.Hijack()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(conn, "hello")
	reply, _ := bufio.NewReader(conn).ReadString('\n')
	fmt.Print(reply)
	// Output:
	// 101 lines
	// server got "hello\n"
}
