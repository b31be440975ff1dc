package signal_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"time"

	"github.com/p2phttp/p2phttp/signal"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

func ExampleNewCode() {
	code := signal.NewCode() // e.g. "7-amber-otter"
	fmt.Println(regexp.MustCompile(`^\d{1,3}-[a-z]+-[a-z]+$`).MatchString(code))
	c, err := signal.ParseCode(" 7 Amber OTTER ")
	fmt.Println(c, c.Nameplate, err)
	_, err = signal.ParseCode("amber-otter")
	fmt.Println(err)
	// Output:
	// true
	// 7-amber-otter 7 <nil>
	// signal: invalid code: "amber-otter" does not start with a nameplate (a number, as the 7 of 7-amber-otter)
}

// A host and a guest meet through a signalling server (here one in the process): the guest has the host's code,
// they agree on a key with the PAKE, confirm it, and swap candidates encrypted under it.
func ExampleClient_Host() {
	srv := signalserver.New(signalserver.Config{})
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	host, err := signal.NewClient(ts.URL).Host(ctx, signal.HostConfig{
		Candidates: []signal.Candidate{{Kind: signal.KindHost, Addr: netip.MustParseAddrPort("127.0.0.1:4001")}},
	})
	if err != nil {
		panic(err)
	}
	defer host.Close()
	code := host.Code() // e.g. 7-amber-otter: shown to the user, typed on the other machine

	guest, err := signal.NewClient(ts.URL).Join(ctx, code,
		[]signal.Candidate{{Kind: signal.KindHost, Addr: netip.MustParseAddrPort("127.0.0.1:4002")}})
	if err != nil {
		panic(err)
	}
	met, err := host.Accept(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("guest sees the host at", guest.Peer[0].Addr)
	fmt.Println("host sees the guest at", met.Peer[0].Addr)
	fmt.Println("same key:", bytes.Equal(guest.Key, met.Key), "same verifier:", guest.Verifier == met.Verifier)
	fmt.Println("the guest dials:", guest.Dialer && !met.Dialer)
	// Output:
	// guest sees the host at 127.0.0.1:4001
	// host sees the guest at 127.0.0.1:4002
	// same key: true same verifier: true
	// the guest dials: true
}

// A guest adds a candidate that needs the relay credentials the server hands it with its meeting (typically the
// relayed address of a TURN allocation), gathered while the key exchange runs. The host reads its own credentials
// with Relay, or is told of each new set by OnRelay.
func ExampleClient_JoinWith() {
	srv := signalserver.New(signalserver.Config{
		RelayURLs:   []string{"turn:127.0.0.1:3480?transport=udp", "turn:127.0.0.1:3480?transport=tcp"},
		RelaySecret: []byte("the deployment's secret"),
	})
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	relays := make(chan *signal.RelayInfo, 8)
	host, err := signal.NewClient(ts.URL).Host(ctx, signal.HostConfig{
		Candidates: []signal.Candidate{{Kind: signal.KindHost, Addr: netip.MustParseAddrPort("127.0.0.1:4001")}},
		OnRelay:    func(r *signal.RelayInfo) { relays <- r },
	})
	if err != nil {
		panic(err)
	}
	defer host.Close()

	guest, err := signal.NewClient(ts.URL).JoinWith(ctx, host.Code(), signal.JoinConfig{
		Candidates: []signal.Candidate{{Kind: signal.KindHost, Addr: netip.MustParseAddrPort("127.0.0.1:4002")}},
		Gather: func(ctx context.Context, relay *signal.RelayInfo) ([]signal.Candidate, error) {
			fmt.Println("guest's relay:", relay.URLs[0])
			// Allocate on the relay with relay.Username and relay.Password; here, pretend it gave this address.
			return []signal.Candidate{{Kind: signal.KindRelay, Addr: netip.MustParseAddrPort("127.0.0.1:50000")}}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	met, err := host.Accept(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("host's relay:", (<-relays).URLs[1])
	fmt.Println("guest sees the host at", guest.Peer[0].Addr)
	fmt.Println("host sees the guest at", met.Peer[0].Addr, "and", met.Peer[1].Kind, met.Peer[1].Addr)
	// Output:
	// guest's relay: turn:127.0.0.1:3480?transport=udp
	// host's relay: turn:127.0.0.1:3480?transport=tcp
	// guest sees the host at 127.0.0.1:4001
	// host sees the guest at 127.0.0.1:4002 and relay 127.0.0.1:50000
}
