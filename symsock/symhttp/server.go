package symhttp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/p2phttp/p2phttp/symsock"
)

// sniffLen is how much of the body http.DetectContentType considers.
const sniffLen = 512

// Serve answers requests read from s with h until the peer closes the connection, the exchange is non-persistent,
// or an error occurs. A clean close by the peer between requests returns nil. It is (&Server{Handler: h}).Serve
// with a background context.
func Serve(s *symsock.Socket, h http.Handler) error {
	srv := Server{Handler: h}
	return srv.Serve(context.Background(), s)
}

// Server serves an http.Handler on Sockets. The zero value with Handler set is ready to use; a Server may serve many
// sockets at once and must not be changed while it does.
type Server struct {
	// Handler answers the requests; nil means http.DefaultServeMux.
	Handler http.Handler
	// Logger receives handler panics (Error), responses a handler got wrong (Warn) and connection errors (Debug);
	// nil means slog.Default().
	Logger *slog.Logger

	// ReadHeaderTimeout bounds the wait for a request's header section, counted from when the server starts
	// waiting for it (for a kept-alive connection IdleTimeout replaces it when set). Zero means no limit.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, header and body. Zero means no limit.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, counted from the end of the request's header section. Zero means
	// no limit.
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive connection. Zero means ReadHeaderTimeout.
	IdleTimeout time.Duration

	// ResponseBufferSize is how many body bytes are buffered before the response head is sent: a response that
	// fits gets a Content-Length, a larger one (or one flushed with http.Flusher) is streamed chunked, or with
	// the Content-Length the handler set. Zero means DefaultResponseBufferSize.
	ResponseBufferSize int
	// MaxHTTP10Buffer is how many bytes of a response of unknown length are buffered for an HTTP/1.0 client
	// (which cannot receive chunked responses); a larger response is aborted and the connection closed. Zero
	// means DefaultMaxHTTP10Buffer.
	MaxHTTP10Buffer int
}

// Serve answers requests read from s with srv.Handler until the peer closes the connection between requests (nil),
// the exchange is non-persistent (nil), ctx ends (its error) or a read, write or handler fails (that error). It
// closes s before returning, unless a handler took the connection with Hijack. Each request's context derives from
// ctx and is cancelled when the handler returns, when the connection fails, or when the client goes away once its
// request is read (symsock.Socket.NotifyPeerGone); the ending of ctx closes s, which aborts a running exchange.
func (srv *Server) Serve(ctx context.Context, s *symsock.Socket) error {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = s.Close() })
		defer stop()
	}
	c := newServerConn(srv, s)
	c.ctx = ctx
	err := c.serve()
	_ = s.Close()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// serverConn is the per-connection state of Serve; its buffers and the response writer are reused across requests.
type serverConn struct {
	srv    *Server
	s      *symsock.Socket
	ctx    context.Context
	log    *slog.Logger
	remote string
	sreq   symsock.Request
	rw     responseWriter
	served int
}

func newServerConn(srv *Server, s *symsock.Socket) *serverConn {
	c := &serverConn{srv: srv, s: s, log: srv.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	if a := s.RemoteAddr(); a != nil {
		c.remote = a.String()
	}
	c.rw.c = c
	c.rw.header = make(http.Header)
	c.rw.bufSize = srv.ResponseBufferSize
	if c.rw.bufSize <= 0 {
		c.rw.bufSize = DefaultResponseBufferSize
	}
	c.rw.max10 = srv.MaxHTTP10Buffer
	if c.rw.max10 <= 0 {
		c.rw.max10 = DefaultMaxHTTP10Buffer
	}
	return c
}

func (c *serverConn) serve() error {
	for {
		var t0 time.Time
		if c.srv.ReadTimeout > 0 || c.srv.ReadHeaderTimeout > 0 || c.srv.IdleTimeout > 0 {
			t0 = time.Now()
			wait := c.srv.ReadHeaderTimeout
			if c.served > 0 && c.srv.IdleTimeout > 0 {
				wait = c.srv.IdleTimeout
			}
			if c.srv.ReadTimeout > 0 && (wait == 0 || c.srv.ReadTimeout < wait) {
				wait = c.srv.ReadTimeout
			}
			if wait > 0 {
				_ = c.s.SetReadDeadline(t0.Add(wait))
			} else {
				_ = c.s.SetReadDeadline(time.Time{})
			}
		}
		// Fresh maps for each request: a handler may hand its Request to code that outlives it.
		c.sreq.Header, c.sreq.Trailer = nil, nil
		if err := c.s.ReadRequest(&c.sreq); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the peer closed between requests
			}
			if errors.Is(err, symsock.ErrUnreadBody) {
				return nil // a body the handler left was too large to drain: closing is the normal way out
			}
			if c.served > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				return nil // an idle keep-alive connection timed out
			}
			return err
		}
		c.served++
		if !t0.IsZero() {
			if c.srv.ReadTimeout > 0 {
				_ = c.s.SetReadDeadline(t0.Add(c.srv.ReadTimeout))
			} else {
				_ = c.s.SetReadDeadline(time.Time{})
			}
		}
		if c.srv.WriteTimeout > 0 {
			_ = c.s.SetWriteDeadline(time.Now().Add(c.srv.WriteTimeout))
		}
		if err := c.serveOne(); err != nil {
			return err
		}
		if !c.s.IsOpen() {
			return nil // a non-persistent exchange: the socket closed the connection
		}
	}
}

// serveOne runs the handler for the request just read into c.sreq and completes the response.
func (c *serverConn) serveOne() (err error) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	req, body, err := c.newRequest(ctx, cancel)
	if err != nil {
		// The request head is valid HTTP/1.1 but not a request net/http can represent (a bad target).
		c.log.Debug("symhttp: unusable request", "remote", c.remote, "err", err)
		return c.abort(http.StatusBadRequest)
	}
	w := &c.rw
	w.reset(req, body, cancel)
	if body == nil {
		// A client that goes away cancels the request's context, as in net/http (with a body: once it is read).
		_ = c.s.NotifyPeerGone(cancel)
	}
	defer func() {
		if body != nil {
			body.closed.Store(true)
		}
		if v := recover(); v != nil {
			err = c.recovered(v)
		}
	}()
	h := c.srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	h.ServeHTTP(w, req)
	// The request's context ends when the handler returns, before the response is completed, as in net/http: a
	// client that has read the response knows the handler's work is cancelled.
	cancel()
	if err := c.ctx.Err(); err != nil {
		// Serve's context ended: the exchange is aborted, not completed.
		_ = c.s.Close()
		return err
	}
	if err := w.finish(); err != nil {
		c.log.Debug("symhttp: response failed", "remote", c.remote, "method", req.Method, "target", req.RequestURI, "err", err)
		if !w.committed && !errors.Is(err, net.ErrClosed) {
			_ = c.abort(http.StatusInternalServerError)
		}
		_ = c.s.Close()
		return err
	}
	return nil
}

// recovered handles a handler panic like net/http: log it (except http.ErrAbortHandler), answer 500 when the
// response has not started, and close the connection.
func (c *serverConn) recovered(v any) error {
	var err error
	if v == http.ErrAbortHandler {
		err = http.ErrAbortHandler
	} else {
		buf := make([]byte, 64<<10)
		buf = buf[:runtime.Stack(buf, false)]
		c.log.Error("symhttp: panic serving "+c.remote, "panic", v, "stack", string(buf))
		err = fmt.Errorf("%w: %v", ErrHandlerPanic, v)
	}
	if !c.rw.committed && !c.rw.hijacked {
		_ = c.abort(http.StatusInternalServerError)
	}
	_ = c.s.Close()
	return err
}

// abort answers with a bare error status and closes the connection. The response writer's pending state is
// dropped; it returns the write error, if any.
func (c *serverConn) abort(status int) error {
	res := symsock.Response{Status: status, Header: http.Header{
		"Connection":   {"close"},
		"Content-Type": {"text/plain; charset=utf-8"},
	}, Body: []byte(http.StatusText(status) + "\n")}
	err := c.s.WriteResponse(&res)
	_ = c.s.Close()
	return err
}

// newRequest builds the http.Request for c.sreq the way net/http's server does; body is nil when the request has
// none.
func (c *serverConn) newRequest(ctx context.Context, cancel context.CancelFunc) (r *http.Request, body *requestBody, err error) {
	sr := &c.sreq
	alloc := new(serverRequest)
	if err := parseTarget(sr.Method, sr.Target, &alloc.url); err != nil {
		return nil, nil, err
	}
	proto := c.s.Proto()
	// WithContext's copy does not escape: the Request lives in alloc, next to its URL.
	alloc.req = *(&http.Request{
		Method:     sr.Method,
		URL:        &alloc.url,
		RequestURI: sr.Target,
		Proto:      proto,
		ProtoMajor: 1,
		Header:     sr.Header,
		Host:       alloc.url.Host,
		RemoteAddr: c.remote,
		Close:      !c.s.KeepAlive(),
	}).WithContext(ctx)
	r = &alloc.req
	if proto == "HTTP/1.1" {
		r.ProtoMinor = 1
	}
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	if hv := r.Header["Host"]; len(hv) > 0 {
		if r.Host == "" {
			r.Host = hv[0]
		}
		delete(r.Header, "Host")
	}
	switch n := c.s.ContentLength(); {
	case n == 0:
		r.Body = http.NoBody
	case n < 0:
		r.ContentLength = -1
		r.TransferEncoding = chunkedEncoding
		r.Trailer = declaredTrailers(r.Header)
	default:
		r.ContentLength = n
	}
	if r.Body == nil {
		body = &requestBody{c: c, r: r, src: c.s.BodyReader(sr), cancel: cancel, expectContinue: symsock.ContinueRequired(sr)}
		r.Body = body
	}
	return r, body, nil
}

var chunkedEncoding = []string{"chunked"}

// declaredTrailers returns the field names announced by the Trailer header of h as the keys of a header with nil
// values (how net/http presents trailers before the body end), or nil when none is announced.
func declaredTrailers(h http.Header) http.Header {
	var t http.Header
	for _, v := range h["Trailer"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if t == nil {
					t = make(http.Header)
				}
				t[http.CanonicalHeaderKey(name)] = nil
			}
		}
	}
	return t
}

// serverRequest is the memory of one server request: the http.Request and its URL in a single allocation.
type serverRequest struct {
	req http.Request
	url url.URL
}

// parseTarget parses a request target into u as net/http does (url.ParseRequestURI, authority form for CONNECT),
// with an allocation-free fast path for the usual plain origin-form path.
func parseTarget(method, target string, u *url.URL) error {
	if method == "CONNECT" && !strings.HasPrefix(target, "/") {
		*u = url.URL{Host: target}
		return nil
	}
	if len(target) > 0 && target[0] == '/' {
		path, query, hasQuery := strings.Cut(target, "?")
		if plainPath(path) {
			*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
			return nil
		}
	}
	p, err := url.ParseRequestURI(target)
	if err != nil {
		return err
	}
	*u = *p
	return nil
}

// plainPath reports whether p has only bytes that url.URL keeps as they are in a path (no escapes, nothing that
// EscapedPath would rewrite), so that URL{Path: p} equals url.ParseRequestURI's result.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-_.~/$&+,:;=@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// requestBody is the http.Request.Body of a server request: the socket's BodyReader, plus "100 Continue" before the
// first read when the client asked for it, and the trailers copied into the http.Request at the end.
type requestBody struct {
	c              *serverConn
	r              *http.Request
	src            io.Reader
	cancel         context.CancelFunc // the request's context: the connection failed
	expectContinue bool
	started        bool
	closed         atomic.Bool // by Close or the end of the handler; checked by Read
	err            error
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if !b.started {
		b.started = true
		// Ask for the body only when it is wanted (RFC 9110 section 10.1.1); the socket refuses when the
		// request did not ask, the body is already read, or the response has started.
		if b.expectContinue && b.c.s.WriteState() == symsock.WriteEmpty {
			if err := b.c.s.WriteResponseContinue(); err != nil && !errors.Is(err, symsock.ErrOutOfOrder) {
				b.err = err
				b.cancel()
				return 0, err
			}
		}
	}
	n, err := b.src.Read(p)
	if err == io.EOF {
		b.err = io.EOF
		_ = b.c.s.NotifyPeerGone(b.cancel)
		for k, v := range b.c.sreq.Trailer {
			if b.r.Trailer == nil {
				b.r.Trailer = make(http.Header)
			}
			b.r.Trailer[k] = v
		}
	} else if err != nil {
		b.err = err
		b.cancel()
	}
	return n, err
}

// Close stops the handler's reads; the socket drains or closes whatever is left before the next request.
func (b *requestBody) Close() error {
	b.closed.Store(true)
	return nil
}

// responseWriter is the http.ResponseWriter of a serverConn, reused across its requests. Small complete responses
// go out whole with a Content-Length; larger or flushed ones are streamed (chunked, or identity when the handler
// set Content-Length).
type responseWriter struct {
	c       *serverConn
	req     *http.Request
	body    *requestBody
	cancel  context.CancelFunc // the request's context, when a write fails
	header  http.Header
	res     symsock.Response
	bufSize int
	max10   int
	buf     []byte

	status      int
	wroteHeader bool
	committed   bool  // the head is on the wire (streaming)
	sent        bool  // the whole response is on the wire (flushed once its declared length was written)
	hijacked    bool  // Hijack took the connection
	prepared    bool  // prepareHead ran
	head        bool  // HEAD request: the body is counted (and sniffed) but never sent
	http10      bool  // HTTP/1.0 client: no chunked streaming
	bodyAllowed bool  // the status permits a body
	declaredLen int64 // Content-Length set by the handler, or -1
	written     int64 // body bytes the handler wrote
	err         error // sticky write error

	trailer  http.Header // trailers to send, reused
	dateVal  [1]string
	ctypeVal [1]string
}

func (w *responseWriter) reset(req *http.Request, body *requestBody, cancel context.CancelFunc) {
	w.req = req
	w.body = body
	w.cancel = cancel
	clear(w.header)
	clear(w.trailer)
	w.buf = w.buf[:0]
	w.status = 0
	w.wroteHeader = false
	w.committed = false
	w.sent = false
	w.hijacked = false
	w.prepared = false
	w.head = req.Method == http.MethodHead
	w.http10 = req.ProtoMinor == 0
	w.bodyAllowed = true
	w.declaredLen = -1
	w.written = 0
	w.err = nil
}

// Header returns the response header map. Changes made after the head is sent have no effect, except for
// trailers.
func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader sets the status. A 100 Continue is sent at once when the client asked for it and the body is
// unread; other 1xx statuses cannot be sent on a Socket and are ignored.
func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		w.c.log.Debug("symhttp: superfluous WriteHeader call", "status", code, "remote", w.c.remote)
		return
	}
	if w.hijacked {
		w.c.log.Debug("symhttp: WriteHeader on a hijacked connection", "status", code, "remote", w.c.remote)
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	h := w.header
	if v, ok := h["Content-Length"]; ok {
		if len(v) == 1 {
			if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
				w.declaredLen = n
			}
		}
		if w.declaredLen < 0 {
			w.c.log.Warn("symhttp: handler set an invalid Content-Length; dropped", "value", v)
			delete(h, "Content-Length")
		}
	}
	delete(h, "Transfer-Encoding") // the socket chooses the framing
	if code == http.StatusNotModified || code == http.StatusNoContent || code < 200 {
		// No content (RFC 9110 sections 15.3.5 and 15.4.5); net/http drops the same headers.
		w.bodyAllowed = false
		w.declaredLen = -1
		delete(h, "Content-Length")
		if code == http.StatusNotModified {
			delete(h, "Content-Type")
		}
	}
	if _, ok := h["Date"]; !ok {
		w.dateVal[0] = httpDate()
		h["Date"] = w.dateVal[:]
	}
}

// writeInterim sends a 1xx response other than 101 at once, with the header map as it is now (which stays for the
// final response, as in net/http): 100 Continue only when the client waits for it, others (103 Early Hints) to
// HTTP/1.1 clients.
func (w *responseWriter) writeInterim(code int) {
	if code == http.StatusContinue {
		if w.body != nil && w.body.expectContinue && w.c.s.WriteState() == symsock.WriteEmpty {
			if err := w.c.s.WriteResponseContinue(); err != nil && !errors.Is(err, symsock.ErrOutOfOrder) {
				w.fail(err)
			}
		}
		return
	}
	if w.http10 {
		return // HTTP/1.0 clients do not understand 1xx
	}
	res := symsock.Response{Status: code, Header: w.header}
	if err := w.c.s.WriteResponse(&res); err != nil {
		if errors.Is(err, symsock.ErrInvalidMessage) {
			w.c.log.Warn("symhttp: interim response not sent", "status", code, "err", err)
			return
		}
		w.fail(err)
	}
}

// Write buffers or streams p as response body.
func (w *responseWriter) Write(p []byte) (int, error) { return writeBody(w, p) }

// WriteString is Write without converting s to a []byte first (io.WriteString uses it).
func (w *responseWriter) WriteString(s string) (int, error) { return writeBody(w, s) }

// writeBody is Write for bytes or a string: small writes are buffered, a response that outgrows the buffer is
// committed and streamed, and memory stays bounded by the buffer size whatever the handler writes at once.
func writeBody[T string | []byte](w *responseWriter, p T) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declaredLen >= 0 && w.written+int64(len(p)) > w.declaredLen {
		return 0, http.ErrContentLength
	}
	n := len(p)
	w.written += int64(n)
	if w.head {
		// Keep the first bytes for Content-Type sniffing; the rest only counts.
		if !w.committed && len(w.buf) < w.bufSize {
			w.buf = append(w.buf, p[:min(len(p), w.bufSize-len(w.buf))]...)
		}
		return n, nil
	}
	if len(w.buf)+len(p) <= w.bufSize {
		w.buf = append(w.buf, p...)
		return n, nil
	}
	if !w.committed {
		if w.http10 && w.declaredLen < 0 {
			// An HTTP/1.0 client cannot take chunked encoding: keep buffering for one Content-Length response.
			if len(w.buf)+len(p) > w.max10 {
				w.err = fmt.Errorf("%w: response to an HTTP/1.0 client larger than %d bytes", ErrResponseTooLarge, w.max10)
				return 0, w.err
			}
			w.buf = append(w.buf, p...)
			return n, nil
		}
		if len(w.buf) < sniffLen {
			// Content-Type sniffing looks at the first bytes of the body: take them from p.
			k := min(len(p), sniffLen-len(w.buf))
			w.buf = append(w.buf, p[:k]...)
			p = p[k:]
		}
		if err := w.commit(); err != nil {
			return 0, err
		}
	}
	if err := w.flushBuffer(); err != nil {
		return 0, err
	}
	if len(p) < w.bufSize {
		w.buf = append(w.buf, p...)
		return n, nil
	}
	if b, ok := any(p).([]byte); ok {
		if err := w.writePiece(b); err != nil {
			return 0, err
		}
		return n, nil
	}
	for len(p) > 0 { // a large string goes through the buffer, never converted whole
		k := min(len(p), w.bufSize)
		w.buf = append(w.buf, p[:k]...)
		if err := w.flushBuffer(); err != nil {
			return 0, err
		}
		p = p[k:]
	}
	return n, nil
}

// Flush sends the head (if not yet sent) and the buffered body now, switching the response to streaming.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the write error; http.ResponseController uses it.
func (w *responseWriter) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if w.sent || w.head || (w.http10 && w.declaredLen < 0 && w.bodyAllowed) {
		return nil // nothing to stream: sent whole, HEAD, or an HTTP/1.0 client and no length
	}
	if !w.committed {
		if w.declaredLen >= 0 && w.written == w.declaredLen {
			// The whole body is in the buffer: send head and body in one write rather than a streamed head and
			// then the body (a reverse proxy flushes after every write, so this is every small proxied reply).
			w.sent = true
			return w.writeWhole()
		}
		if err := w.commit(); err != nil {
			return err
		}
	}
	return w.flushBuffer()
}

// SetReadDeadline sets the connection's read deadline (for http.ResponseController).
func (w *responseWriter) SetReadDeadline(t time.Time) error { return w.c.s.SetReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline (for http.ResponseController).
func (w *responseWriter) SetWriteDeadline(t time.Time) error { return w.c.s.SetWriteDeadline(t) }

// EnableFullDuplex reports success: a Socket lets the handler read the request body while it writes the response.
func (w *responseWriter) EnableFullDuplex() error { return nil }

// Hijack hands the connection over to the handler (see Socket.Hijack), as net/http's Hijacker does: a WebSocket
// server after WriteHeader(101), a CONNECT proxy after WriteHeader(200), or a reverse proxy that writes the
// upstream's 101 itself before any WriteHeader. A 101 or a 2xx to CONNECT set with WriteHeader is sent first. The
// returned connection yields any bytes the client sent behind its request; the bufio.ReadWriter is over it. After
// Hijack the Server leaves the connection alone, and the ResponseWriter's Write fails with http.ErrHijacked.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	switch {
	case w.hijacked:
		return nil, nil, http.ErrHijacked
	case w.committed:
		return nil, nil, errors.New("symhttp: Hijack after the response started")
	case w.wroteHeader:
		tunnel := w.req.Method == http.MethodConnect && w.status >= 200 && w.status < 300
		if w.status != http.StatusSwitchingProtocols && !tunnel {
			return nil, nil, fmt.Errorf("symhttp: Hijack after WriteHeader(%d): only a 101 or a 2xx to CONNECT can precede it", w.status)
		}
		w.prepareHead()
		if err := w.c.s.WriteResponse(&w.res); err != nil {
			w.fail(err)
			return nil, nil, err
		}
	}
	conn, err := w.c.s.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	return conn, bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn)), nil
}

// prepareHead fixes the header map just before the head is written.
func (w *responseWriter) prepareHead() {
	if w.prepared {
		return
	}
	w.prepared = true
	for k, v := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			// Never a header: a trailer whose value may still change until the handler returns.
			w.setTrailer(k[len(http.TrailerPrefix):], v)
			delete(w.header, k)
		}
	}
	w.sniff(w.buf)
	w.res = symsock.Response{Status: w.status, Header: w.header}
}

func (w *responseWriter) setTrailer(name string, v []string) {
	if w.trailer == nil {
		w.trailer = make(http.Header)
	}
	w.trailer[http.CanonicalHeaderKey(name)] = v
}

// commit writes the response head for streaming: chunked, or identity when the handler declared a length, or no
// framing for bodiless responses.
func (w *responseWriter) commit() error {
	w.committed = true
	w.prepareHead()
	if err := w.c.s.WriteResponseMetadata(&w.res); err != nil {
		w.fail(err)
		return err
	}
	return nil
}

// flushBuffer sends the buffered body as one piece.
func (w *responseWriter) flushBuffer() error {
	if len(w.buf) == 0 || w.head {
		w.buf = w.buf[:0]
		return nil
	}
	err := w.writePiece(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *responseWriter) writePiece(p []byte) error {
	w.res.Body = p
	err := w.c.s.Write(&w.res)
	w.res.Body = nil
	if err != nil {
		w.fail(err)
	}
	return err
}

// fail makes err sticky and, when the connection is gone, cancels the request's context so the handler can stop.
func (w *responseWriter) fail(err error) {
	w.err = err
	if !errors.Is(err, symsock.ErrInvalidMessage) {
		w.cancel()
	}
}

// finish completes the response after the handler returned.
func (w *responseWriter) finish() error {
	if w.hijacked {
		return nil
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if w.declaredLen >= 0 && w.written < w.declaredLen && !w.head {
		return fmt.Errorf("%w: handler wrote %d of the %d bytes it declared in Content-Length", ErrShortResponse, w.written, w.declaredLen)
	}
	if w.sent {
		return nil
	}
	if !w.committed {
		w.prepareHead()
		if !w.streamAtEnd() {
			return w.writeWhole()
		}
		if err := w.commit(); err != nil {
			return err
		}
	}
	if err := w.flushBuffer(); err != nil {
		return err
	}
	if t := w.finalTrailers(); len(t) > 0 {
		w.res.Trailer = t
		err := w.c.s.WriteTrailers(&w.res)
		w.res.Trailer = nil
		return err
	}
	return w.c.s.WriteEndOfMessage()
}

// writeWhole writes the response, head and buffered body, with one WriteResponse.
func (w *responseWriter) writeWhole() error {
	w.prepareHead()
	if !w.head || w.declaredLen < 0 {
		// The socket adds the Content-Length (and drops the body of a HEAD reply).
		w.res.Body = w.buf
	}
	err := w.c.s.WriteResponse(&w.res)
	w.res.Body = nil
	w.buf = w.buf[:0]
	if err != nil {
		w.fail(err)
	}
	return err
}

// streamAtEnd reports whether a response complete in the buffer still needs a streamed head: it has trailers (only
// chunked framing carries them), or it answers HEAD without a length to report. It runs after prepareHead.
func (w *responseWriter) streamAtEnd() bool {
	if w.head {
		return w.declaredLen < 0 && (w.written == 0 || w.written > int64(w.bufSize))
	}
	if !w.bodyAllowed || w.http10 || w.declaredLen >= 0 {
		return false
	}
	_, declared := w.header["Trailer"]
	return declared || len(w.trailer) > 0
}

// finalTrailers collects the trailers once the handler returned: those declared in the Trailer header (values
// from the header map) and those set with http.TrailerPrefix. Only chunked framing carries trailers; otherwise
// they are dropped, as net/http does.
func (w *responseWriter) finalTrailers() http.Header {
	if w.declaredLen >= 0 || w.http10 || w.head || !w.bodyAllowed {
		return nil
	}
	for name := range declaredTrailers(w.header) {
		if vals, ok := w.header[name]; ok {
			w.setTrailer(name, vals)
		}
	}
	for k, v := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			w.setTrailer(k[len(http.TrailerPrefix):], v)
		}
	}
	return w.trailer
}

// sniff sets Content-Type from the body's first bytes when the handler set none, like net/http.
func (w *responseWriter) sniff(p []byte) {
	if !w.bodyAllowed || len(p) == 0 {
		return
	}
	if _, ok := w.header["Content-Type"]; ok {
		return
	}
	if ce := w.header["Content-Encoding"]; len(ce) > 0 && ce[0] != "" {
		return
	}
	w.ctypeVal[0] = http.DetectContentType(p)
	w.header["Content-Type"] = w.ctypeVal[:]
}

// dateCache holds the Date header value of the current second.
type dateCache struct {
	sec  int64
	text string
}

var cachedDate atomic.Pointer[dateCache]

// httpDate returns the current time in the HTTP date format, formatting it at most once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &dateCache{sec: sec, text: now.UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}
