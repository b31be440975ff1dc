package signalserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
)

// Serve serves the HTTP API on l with the configured timeouts until ctx ends,
// then shuts down gracefully: it stops accepting, wakes parked long-polls with
// a retryable 503 (Close), and waits up to ShutdownTimeout for in-flight
// requests. It returns nil after a shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	shutdown := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() {
		s.Close()
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		shutdown <- hs.Shutdown(sctx)
	})
	s.log.Info("signalserver: serving HTTP", "addr", l.Addr())
	err := hs.Serve(l)
	if !errors.Is(err, http.ErrServerClosed) {
		if stop() { // Serve failed on its own
			hs.Close()
		}
		return err
	}
	return <-shutdown
}

// ListenAndServe listens on httpAddr (TCP) and stunAddr (UDP) and serves the
// API and STUN until ctx ends, then shuts both down gracefully (see Serve).
// If either fails, both stop and the error is returned.
func (s *Server) ListenAndServe(ctx context.Context, httpAddr, stunAddr string) error {
	l, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", stunAddr)
	if err != nil {
		l.Close()
		return err
	}
	defer pc.Close()
	s.log.Info("signalserver: serving STUN", "addr", pc.LocalAddr())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- s.Serve(ctx, l) }()
	go func() { errs <- s.ServeSTUN(ctx, pc) }()
	first := <-errs
	cancel()
	second := <-errs
	return errors.Join(first, second)
}
