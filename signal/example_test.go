package signal_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"time"

	"github.com/p2phttp/p2phttp/signal"
)

// Two peers meet through a signalling server: each learns the other's
// candidates, exactly one of them dials, and both hold the same session key.
func ExampleClient_Join() {
	// A server on loopback (p2phttp signal runs the same thing).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go signal.NewServer(signal.ServerConfig{}).Serve(ctx, l)
	url := "http://" + l.Addr().String()

	code := signal.NewCode() // shown to the user, typed on the other machine
	join := func(port uint16) <-chan *signal.Meeting {
		ch := make(chan *signal.Meeting)
		go func() {
			cands := []signal.Candidate{{Kind: signal.KindHost, Addr: netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", port))}}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			m, err := signal.NewClient(url).Join(ctx, code, cands)
			if err != nil {
				panic(err)
			}
			ch <- m
		}()
		return ch
	}
	a, b := join(4001), join(4002)
	ma, mb := <-a, <-b
	fmt.Println("a sees b at", ma.Peer.Candidates[0].Addr)
	fmt.Println("one dialer:", ma.Dialer != mb.Dialer)
	fmt.Println("same key:", bytes.Equal(ma.Key, mb.Key))
	// Output:
	// a sees b at 127.0.0.1:4002
	// one dialer: true
	// same key: true
}

func ExampleNewCode() {
	code := signal.NewCode() // e.g. "7-amber-otter"
	fmt.Println(regexp.MustCompile(`^\d{1,3}-[a-z]+-[a-z]+$`).MatchString(code))
	fmt.Println(signal.NormalizeCode(" 7 Amber OTTER "))
	// Output:
	// true
	// 7-amber-otter
}
