package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// statusInterval is how often serve redraws its status line.
const statusInterval = 500 * time.Millisecond

// serveStatus is serve's stderr. It serialises the lines that concurrent requests print and, when live (stderr is a
// terminal), keeps one status line under them with what is being sent right now, e.g. "sending 2 responses: 512.0
// MiB so far, 83.0 MiB/s".
type serveStatus struct {
	out  io.Writer
	live bool

	mu       sync.Mutex // guards the fields below and writes to out
	drawn    bool       // the status line is on the screen
	active   int        // responses being sent
	sent     int64      // body bytes of those responses so far
	total    int64      // body bytes of every response, for the rate
	lastAt   time.Time
	lastSent int64
	rate     float64 // bytes per second over the last interval
}

func newServeStatus(out io.Writer) *serveStatus {
	return &serveStatus{out: out, live: isTerminal(out), lastAt: time.Now()}
}

// Write prints p above the status line.
func (s *serveStatus) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearLocked()
	n, err := s.out.Write(p)
	s.drawLocked()
	return n, err
}

// run redraws the status line every statusInterval until ctx ends.
func (s *serveStatus) run(ctx context.Context) {
	if !s.live {
		return
	}
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.clearLocked()
			s.mu.Unlock()
			return
		case now := <-t.C:
			s.tick(now)
		}
	}
}

func (s *serveStatus) tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := now.Sub(s.lastAt); d > 0 {
		s.rate = float64(s.total-s.lastSent) / d.Seconds()
	}
	s.lastAt, s.lastSent = now, s.total
	s.drawLocked()
}

// track counts the body bytes of a response as they are written, when the status line is drawn; done ends it.
func (s *serveStatus) track(w http.ResponseWriter) (http.ResponseWriter, func()) {
	if s == nil || !s.live {
		return w, func() {}
	}
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
	lw := &liveWriter{ResponseWriter: w, s: s}
	return lw, func() {
		s.mu.Lock()
		s.active--
		s.sent -= lw.n
		if s.active == 0 {
			s.clearLocked()
		}
		s.mu.Unlock()
	}
}

func (s *serveStatus) clearLocked() {
	if s.drawn {
		fmt.Fprint(s.out, "\r\x1b[K")
		s.drawn = false
	}
}

func (s *serveStatus) drawLocked() {
	if !s.live || s.active == 0 {
		return
	}
	fmt.Fprintf(s.out, "\r%s\x1b[K", s.lineLocked())
	s.drawn = true
}

func (s *serveStatus) lineLocked() string {
	what := "1 response"
	if s.active != 1 {
		what = fmt.Sprintf("%d responses", s.active)
	}
	return fmt.Sprintf("sending %s: %s so far, %s/s", what, formatBytes(s.sent), formatBytes(int64(s.rate)))
}

// liveWriter counts a response's body bytes into the status line. Unwrap lets http.ResponseController reach the
// writers below.
type liveWriter struct {
	http.ResponseWriter
	s *serveStatus
	n int64
}

func (w *liveWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.s.mu.Lock()
	w.n += int64(n)
	w.s.sent += int64(n)
	w.s.total += int64(n)
	w.s.mu.Unlock()
	return n, err
}

func (w *liveWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *liveWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
