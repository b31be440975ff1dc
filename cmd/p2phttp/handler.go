package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"time"
)

// proxyFlushInterval is the longest a proxied response's bytes wait in serve's buffer before they are sent.
const proxyFlushInterval = 5 * time.Millisecond

// backendIdleConns is how many idle keep-alive connections serve --proxy keeps to the web server, so requests on
// that many streams at once each reuse one.
const backendIdleConns = 64

// newHandler is what serve answers with: the files under dir (see newDirHandler; hidden files only when hidden is
// set; symlinks cannot lead outside dir) or a reverse proxy to the web server at proxy (upgrades such as WebSockets
// included: the proxy hijacks the symsock connection after the web server's 101). It returns a description for the
// user.
func newHandler(dir, proxy string, hidden bool, log *slog.Logger) (http.Handler, string, error) {
	switch {
	case dir != "" && proxy != "":
		return nil, "", usagef("pass either --dir or --proxy, not both")
	case dir != "":
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, "", usagef("--dir %s", err)
		}
		if !fi.IsDir() {
			return nil, "", usagef("--dir %s is not a directory", dir)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, "", fmt.Errorf("cannot open --dir: %w", err)
		}
		// The root stays open for the life of the process.
		return newDirHandler(root.FS(), hidden), "the files under " + dir, nil
	case proxy != "":
		target, err := url.Parse(proxy)
		if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
			return nil, "", usagef("--proxy %q is not an http:// or https:// URL", proxy)
		}
		// http.DefaultTransport keeps only 2 idle connections per host: with more streams than that at once (a
		// browser opens 6), every further request would open (and then close) a TCP connection to the web server.
		backend := http.DefaultTransport.(*http.Transport).Clone()
		backend.MaxIdleConnsPerHost = backendIdleConns
		return &httputil.ReverseProxy{
			Transport: backend,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded()
			},
			// Bytes of a response that stalls must not wait in a buffer for more that may never come, so they are
			// flushed within proxyFlushInterval (a response of unknown length, such as server-sent events, is passed
			// on at once whatever this says). Not -1: that flushes the head at once, apart from the body, and a small
			// reply then costs two packets and a goroutine instead of one packet.
			FlushInterval: proxyFlushInterval,
			ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			// The details (addresses, Go types) are for this peer's operator, not for the guest.
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				log.Warn("proxy: local web server failed", "target", target.String(), "path", r.URL.Path, "err", err)
				http.Error(w, "p2phttp: the web server behind this peer did not answer", http.StatusBadGateway)
			},
		}, "the web server at " + target.String(), nil
	default:
		return nil, "", usagef("pass --dir DIR to share a folder or --proxy URL to share a local web server")
	}
}

// requestLog wraps a handler shared by every peer and counts the requests in flight, so that Ctrl-C can let them
// finish. (Each peer's requests are logged by its accessLog.)
type requestLog struct {
	h        http.Handler
	inFlight atomic.Int64
}

func (l *requestLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.inFlight.Add(1)
	defer l.inFlight.Add(-1)
	l.h.ServeHTTP(w, r)
}

// drain waits until no request is in flight or grace has passed.
func (l *requestLog) drain(grace time.Duration) {
	deadline := time.Now().Add(grace)
	for l.inFlight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// statusWriter records the status and size of a response. Unwrap lets http.ResponseController reach the socket's
// writer (Flush for streamed responses).
type statusWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
