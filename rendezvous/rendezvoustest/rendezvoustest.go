package rendezvoustest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/p2phttp/p2phttp/rendezvous"
	"github.com/p2phttp/p2phttp/signal"
)

// Server is a signalling server (HTTP on URL) and STUN responder (UDP on STUNAddr) on 127.0.0.1 ports the kernel
// picked.
type Server struct {
	URL      string // e.g. "http://127.0.0.1:41234"
	STUNAddr string // e.g. "127.0.0.1:41235"

	stun net.PacketConn
	stop context.CancelFunc
	done sync.WaitGroup
}

// NewServer starts a Server with cfg (zero fields take signal's defaults). Close it when done.
func NewServer(cfg signal.ServerConfig) (*Server, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("rendezvoustest: %w", err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("rendezvoustest: %w", err)
	}
	srv := signal.NewServer(cfg)
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

// Config is a rendezvous.Config that meets through s with code, bound to 127.0.0.1.
func (s *Server) Config(code string) rendezvous.Config {
	return rendezvous.Config{SignalURL: s.URL, STUNAddr: s.STUNAddr, Code: code, LocalAddr: "127.0.0.1:0"}
}

// Close stops the server gracefully (long-polls in progress are told to retry) and waits until it has.
func (s *Server) Close() {
	s.stop()
	s.done.Wait()
	s.stun.Close()
}

// Pair meets two peers, A with cfgA and B with cfgB, at the same time, as two machines would. Either both sessions
// are returned or neither; when one peer fails, the other is stopped rather than left waiting.
func Pair(ctx context.Context, cfgA, cfgB rendezvous.Config) (a, b *rendezvous.Session, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type met struct {
		s   *rendezvous.Session
		err error
	}
	chA, chB := make(chan met, 1), make(chan met, 1)
	meet := func(cfg rendezvous.Config, ch chan<- met) {
		s, err := rendezvous.Meet(ctx, cfg)
		if err != nil {
			cancel()
		}
		ch <- met{s, err}
	}
	go meet(cfgA, chA)
	go meet(cfgB, chB)
	ma, mb := <-chA, <-chB
	if err := errors.Join(ma.err, mb.err); err != nil {
		for _, s := range []*rendezvous.Session{ma.s, mb.s} {
			if s != nil {
				s.Close()
			}
		}
		return nil, nil, err
	}
	return ma.s, mb.s, nil
}
