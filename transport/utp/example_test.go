package utp_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/p2phttp/p2phttp/transport/utp"
)

// Two peers on loopback: each knows the other's candidates and the shared session key (in real use both come from
// the signalling server). The dialler opens a stream; the other side answers in upper case.
func Example() {
	key := make([]byte, 32)
	rand.Read(key)
	alice, err := utp.Listen("udp4", "127.0.0.1:0", utp.Config{})
	if err != nil {
		panic(err)
	}
	defer alice.Close()
	bob, err := utp.Listen("udp4", "127.0.0.1:0", utp.Config{})
	if err != nil {
		panic(err)
	}
	defer bob.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	go func() {
		path, err := bob.Connect(ctx, utp.Peer{Key: key, Candidates: alice.HostCandidates()})
		if err != nil {
			panic(err)
		}
		s, err := path.AcceptStream(ctx)
		if err != nil {
			panic(err)
		}
		msg, _ := io.ReadAll(s) // until alice's CloseWrite
		s.Write([]byte(strings.ToUpper(string(msg))))
		s.Close() // graceful: returns once alice has everything
	}()

	path, err := alice.Connect(ctx, utp.Peer{Key: key, Candidates: bob.HostCandidates(), Dialer: true})
	if err != nil {
		panic(err)
	}
	defer path.Close()
	local, remote := path.Pair()
	fmt.Println("pair:", local.Kind, "->", remote.Kind)
	s, err := path.OpenStream(ctx)
	if err != nil {
		panic(err)
	}
	s.Write([]byte("hello over utp"))
	s.(interface{ CloseWrite() error }).CloseWrite()
	reply, err := io.ReadAll(s)
	fmt.Printf("%s %v\n", reply, err)
	s.Close()
	// Output:
	// pair: host -> host
	// HELLO OVER UTP <nil>
}
