package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// accessLog wraps the handler of one meeting: it prints one line per request to out (nil prints nothing) and counts
// requests and body bytes sent, for the line serve prints when the peer leaves.
type accessLog struct {
	h        http.Handler
	out      io.Writer
	status   *serveStatus // nil: no status line
	peer     string
	requests atomic.Int64
	bytes    atomic.Int64
}

func (l *accessLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w, done := l.status.track(w)
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	l.h.ServeHTTP(sw, r)
	done()
	l.requests.Add(1)
	l.bytes.Add(sw.bytes)
	if l.out != nil {
		fmt.Fprintf(l.out, "p2phttp: %s %s %s %d %d bytes %s\n", l.peer, escapeText(r.Method), escapeText(r.RequestURI),
			sw.status, sw.bytes, roundDuration(time.Since(start)))
	}
}

// escapeText makes text from a peer safe to print on a terminal: control characters (which could move the cursor,
// rewrite earlier lines or change the terminal's settings), invisible formatting characters such as bidirectional
// overrides, invalid UTF-8 and backslashes are written as Go escapes (\x1b, \u202e, \\); the rest is kept.
func escapeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == ' ' || unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}
