package main

import (
	"bytes"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestServeStatusLine(t *testing.T) {
	var out bytes.Buffer
	s := &serveStatus{out: &out, live: true, lastAt: time.Unix(1000, 0)}
	w, done := s.track(httptest.NewRecorder())
	w.Write(make([]byte, 3<<20))
	s.tick(time.Unix(1002, 0))
	assert.Equal(t, "\rsending 1 response: 3.0 MiB so far, 1.5 MiB/s\x1b[K", out.String())

	// A line printed meanwhile goes above the status line, which is drawn again under it.
	out.Reset()
	s.Write([]byte("p2phttp: a line\n"))
	assert.Equal(t, "\r\x1b[Kp2phttp: a line\n\rsending 1 response: 3.0 MiB so far, 1.5 MiB/s\x1b[K", out.String())

	// When nothing is being sent, the status line goes away and lines print plainly.
	out.Reset()
	done()
	assert.Equal(t, "\r\x1b[K", out.String())
	out.Reset()
	s.Write([]byte("p2phttp: another\n"))
	assert.Equal(t, "p2phttp: another\n", out.String())

	// Not a terminal: lines only.
	var plain bytes.Buffer
	s = newServeStatus(&plain)
	w, done = s.track(httptest.NewRecorder())
	w.Write([]byte("x"))
	s.tick(time.Now())
	s.Write([]byte("line\n"))
	done()
	assert.Equal(t, "line\n", plain.String())
}
