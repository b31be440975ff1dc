package rendezvoustest

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/signal/relay"
	"github.com/p2phttp/p2phttp/signal/signalserver"
)

// Server is a signalling server (HTTP on URL) and STUN responder (UDP on STUNAddr) on 127.0.0.1 ports the kernel
// picked.
type Server struct {
	URL      string // e.g. "http://127.0.0.1:41234"
	STUNAddr string // e.g. "127.0.0.1:41235"
	// Relay is the TURN relay (UDP and TCP on 127.0.0.1) the server hands out credentials for; nil without one.
	Relay *relay.Server

	stun net.PacketConn
	stop context.CancelFunc
	done sync.WaitGroup
}

// NewServer starts a Server with cfg (zero fields take signalserver's defaults). Close it when done.
func NewServer(cfg signalserver.Config) (*Server, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("rendezvoustest: %w", err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("rendezvoustest: %w", err)
	}
	srv := signalserver.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{URL: "http://" + ln.Addr().String(), STUNAddr: pc.LocalAddr().String(), stun: pc, stop: cancel}
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		srv.Serve(ctx, ln)
	}()
	go func() {
		defer s.done.Done()
		srv.ServeSTUN(ctx, pc)
	}()
	return s, nil
}

// NewServerWithRelay is NewServer with a TURN relay beside it on 127.0.0.1 (UDP and TCP, relaying to loopback
// peers), whose credentials the server hands the peers.
func NewServerWithRelay(cfg signalserver.Config) (*Server, error) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("rendezvoustest: %w", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("rendezvoustest: %w", err)
	}
	secret := []byte("rendezvoustest relay secret")
	r, err := relay.New(relay.Config{Secret: secret, AllowPrivatePeers: true}, pc, ln)
	if err != nil {
		pc.Close()
		ln.Close()
		return nil, fmt.Errorf("rendezvoustest: %w", err)
	}
	cfg.RelaySecret = secret
	cfg.RelayURLs = []string{"turn:" + pc.LocalAddr().String() + "?transport=udp", "turn:" + ln.Addr().String() + "?transport=tcp"}
	s, err := NewServer(cfg)
	if err != nil {
		r.Close()
		return nil, err
	}
	s.Relay = r
	return s, nil
}

// Unlimited is a server configuration without the per-client limits (rates, parked polls), for tests and
// benchmarks where every peer comes from 127.0.0.1, and with room for 64 guests per nameplate. The other limits keep
// their defaults.
func Unlimited() signalserver.Config {
	return signalserver.Config{RatePerIP: -1, RoomRatePerIP: 1e6, RoomBurst: 1e6, STUNRatePerIP: 1e6, STUNBurst: 1e6,
		MaxParkedPerIP: 1e6, MaxParkedPerIPv6Net: 1e6, MaxGuestsPerNameplate: 64}
}

// Config is a rendezvous.Config that meets through s with code (empty: a host picks one), bound to 127.0.0.1.
func (s *Server) Config(code string) rendezvous.Config {
	return rendezvous.Config{SignalURL: s.URL, STUNAddr: s.STUNAddr, Code: code, LocalAddr: "127.0.0.1:0"}
}

// Close stops the server gracefully (long-polls in progress are told to retry) and waits until it has.
func (s *Server) Close() {
	s.stop()
	s.done.Wait()
	s.stun.Close()
	if s.Relay != nil {
		s.Relay.Close()
	}
}

// Pair starts a host with hostCfg and meets it with one guest with guestCfg, as two machines would. The guest uses
// the host's code (guestCfg.Code is ignored). Either everything is returned or nothing; close the host (which closes
// its session) and the guest's session when done.
func Pair(ctx context.Context, hostCfg, guestCfg rendezvous.Config) (host *rendezvous.Host, hs, gs *rendezvous.Session, err error) {
	host, err = rendezvous.NewHost(ctx, hostCfg)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	guestCfg.Code = host.Code()
	type met struct {
		s   *rendezvous.Session
		err error
	}
	ch := make(chan met, 1)
	go func() {
		s, err := rendezvous.Meet(ctx, guestCfg)
		if err != nil {
			cancel() // the host would wait for ever
		}
		ch <- met{s, err}
	}()
	hs, herr := host.Accept(ctx)
	if herr != nil {
		cancel()
	}
	g := <-ch
	if herr != nil || g.err != nil {
		if g.s != nil {
			g.s.Close()
		}
		host.Close()
		if g.err != nil {
			return nil, nil, nil, fmt.Errorf("guest: %w", g.err)
		}
		return nil, nil, nil, fmt.Errorf("host: %w", herr)
	}
	return host, hs, g.s, nil
}
