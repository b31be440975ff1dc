package symhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/p2phttp/p2phttp/symsock"
)

const (
	// maxWriteWait is how long a finished response waits for its request body to be sent before the connection
	// is given up (net/http's maxWriteWaitBeforeConnReuse).
	maxWriteWait = 50 * time.Millisecond
	// smallRequestBody is the largest body sent with the head in one WriteRequest; larger ones are streamed.
	smallRequestBody = 64 << 10
)

// NewRoundTripper returns an http.RoundTripper that sends requests over the one socket s, one at a time (s becomes
// the client). It is a *RoundTripper with default settings. To run requests concurrently, each on a stream of its
// own, use NewTransport.
func NewRoundTripper(s *symsock.Socket) http.RoundTripper {
	return &RoundTripper{Socket: s}
}

// RoundTripper is an http.RoundTripper over one Socket, which it drives as the client: the way to speak HTTP on a
// single stream that a symmetric protocol handed over (see the package's symmetric example). Concurrent RoundTrip
// calls wait their turn: an exchange lasts until its response body is read to the end or closed. A failed
// exchange (transport error, cancelled context, a body that could not be drained) closes the socket, and later
// calls fail with an error wrapping net.ErrClosed; a 101 or CONNECT response hands the socket to the caller (the
// response Body is the connection), and later calls fail with ErrHijacked. A client that can open streams should
// use NewTransport, which has none of these limits.
//
// The request goes out with Content-Length when its length is known and chunked otherwise (with trailers from
// Request.Trailer); "Expect: 100-continue" holds the body back until the server's 100 Continue, a final response
// or ExpectContinueTimeout. The response body is read from the socket as the caller reads it, with bounded
// memory. The fields may not change once RoundTrip was called.
type RoundTripper struct {
	// Socket carries the exchanges.
	Socket *symsock.Socket
	// ExpectContinueTimeout is how long a request with "Expect: 100-continue" waits for the server's answer
	// before sending its body anyway. Zero means DefaultExpectContinueTimeout.
	ExpectContinueTimeout time.Duration
	// MaxDrainBytes is how much of an unread response body Close reads to keep the connection usable; with more
	// left, the socket is closed. Zero means DefaultMaxDrainBytes; negative never drains.
	MaxDrainBytes int64
	// MaxBufferedBody bounds a request body of unknown length buffered whole for an HTTP/1.0-locked socket (see
	// Socket.LockClientToHTTP10). Zero means DefaultMaxBufferedBody.
	MaxBufferedBody int64

	once       sync.Once
	turn       chan struct{} // holds a token while an exchange runs
	handedOver atomic.Bool   // a 101 or a CONNECT tunnel took the socket (Hijack)
}

func (rt *RoundTripper) init() {
	rt.once.Do(func() { rt.turn = make(chan struct{}, 1) })
}

// RoundTrip sends req over the socket and reads the response head. See RoundTripper.
func (rt *RoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.init()
	ctx := req.Context()
	if err := validateRequest(req); err != nil {
		closeBody(req)
		return nil, err
	}
	took := false
	if ctx.Err() == nil {
		select {
		case rt.turn <- struct{}{}:
			took = true
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		// Ended before its exchange began: the socket is left alone for the next one.
		if took {
			<-rt.turn
		}
		closeBody(req)
		return nil, fmt.Errorf("symhttp: round trip: %w", context.Cause(ctx))
	}
	x := &exchange{rt: rt, s: rt.Socket, req: req, ctx: ctx, trace: httptrace.ContextClientTrace(ctx)}
	res, err := x.run()
	if err != nil {
		return nil, fmt.Errorf("symhttp: round trip %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	return res, nil
}

func validateRequest(req *http.Request) error {
	switch {
	case req.URL == nil:
		return errors.New("symhttp: round trip: nil Request.URL")
	case req.Header == nil:
		return errors.New("symhttp: round trip: nil Request.Header")
	case req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method):
		return fmt.Errorf("symhttp: round trip: invalid method %q", req.Method)
	}
	return nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// exchange is one request/response on the socket.
type exchange struct {
	rt    *RoundTripper
	s     *symsock.Socket
	req   *http.Request
	ctx   context.Context
	trace *httptrace.ClientTrace

	stopWatch func() bool // stops the context watcher; false once it fired
	sreq      symsock.Request
	sres      *symsock.Response

	// Request body streaming (when not sent with the head).
	body      io.Reader // what remains to send; nil when the body went with the head
	length    int64     // declared length, -1 for chunked
	trailers  bool
	waitFinal chan struct{} // closed when a final response arrived (Expect: 100-continue)
	got100    chan struct{} // closed when 100 Continue arrived
	saw100    bool
	wrote     chan error // result of the body writer; nil when none runs

	finalSignalled bool      // waitFinal is closed
	bodyOnce       sync.Once // the request body is closed once, by the writer or to stop it

	releaseOnce sync.Once
}

func (x *exchange) run() (*http.Response, error) {
	if !x.s.IsOpen() {
		closeBody(x.req)
		x.release()
		if x.rt.handedOver.Load() {
			return nil, fmt.Errorf("%w: a response switched protocols and took the socket", symsock.ErrHijacked)
		}
		return nil, fmt.Errorf("%w: the socket is closed", net.ErrClosed)
	}
	if x.ctx.Done() != nil {
		x.stopWatch = context.AfterFunc(x.ctx, func() { _ = x.s.Close() })
	}
	if err := x.writeHead(); err != nil {
		x.closeBody()
		return nil, x.fail(err)
	}
	if x.body != nil {
		x.wrote = make(chan error, 1)
		got100, final := x.got100, x.waitFinal
		go func() { x.wrote <- x.writeBody(got100, final) }()
	}
	res, err := x.readResponse()
	if err != nil {
		return nil, x.fail(err)
	}
	return res, nil
}

// fail ends a failed exchange: the socket is closed (its state is unknown), the body writer stopped and the turn
// released. A cancelled context is reported as such.
func (x *exchange) fail(err error) error {
	_ = x.s.Close()
	x.stopWriter()
	if x.wrote != nil {
		<-x.wrote
		x.wrote = nil
	}
	if x.stopWatch != nil && !x.stopWatch() {
		err = fmt.Errorf("%w (%w)", context.Cause(x.ctx), err)
	}
	x.stopWatch = nil
	x.release()
	return err
}

// stopWriter unblocks a body writer that waits for 100 Continue or for the request body's next bytes (as net/http
// does, by closing the body); the socket is closed already, so it then fails at once.
func (x *exchange) stopWriter() {
	if x.wrote == nil {
		return
	}
	x.finalArrived()
	x.closeBody()
}

// finalArrived tells a body writer waiting for 100 Continue that a final response (or the end) came instead.
func (x *exchange) finalArrived() {
	if x.waitFinal != nil && !x.finalSignalled {
		x.finalSignalled = true
		close(x.waitFinal)
	}
}

func (x *exchange) closeBody() {
	x.bodyOnce.Do(func() { closeBody(x.req) })
}

func (x *exchange) release() {
	x.releaseOnce.Do(func() { <-x.rt.turn })
}

// done ends an exchange whose response was read to its end. The request body may still be on its way (the server
// answered early): the writer gets a moment to finish, as in net/http, else the socket is closed. A body that
// failed to go out closes the socket but does not spoil the complete response. It reports only a cancelled
// context.
func (x *exchange) done() error {
	if x.wrote != nil {
		var werr error
		select {
		case werr = <-x.wrote:
		default:
			t := time.NewTimer(maxWriteWait)
			select {
			case werr = <-x.wrote:
			case <-t.C:
				_ = x.s.Close()
				x.stopWriter()
				<-x.wrote
			}
			t.Stop()
		}
		if werr == errBodyWithheld {
			_ = x.s.Close() // the server was promised a body it never got
		}
		x.wrote = nil
	}
	var err error
	if x.stopWatch != nil && !x.stopWatch() {
		err = context.Cause(x.ctx)
	}
	x.stopWatch = nil
	x.release()
	return err
}

// writeHead writes the request head, with the body when it is small and known, and sets up streaming otherwise.
func (x *exchange) writeHead() error {
	req := x.req
	sr := &x.sreq
	sr.Method = req.Method
	if sr.Method == "" {
		sr.Method = http.MethodGet
	}
	sr.Target = requestTarget(req)
	sr.Header = make(http.Header, len(req.Header)+2)
	for k, v := range req.Header {
		switch textproto.CanonicalMIMEHeaderKey(k) {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // from the Request's fields, as net/http does
		}
		sr.Header[k] = v
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host != "" {
		sr.Header["Host"] = []string{host}
	}
	if req.Close && !httpguts.HeaderValuesContainsToken(sr.Header["Connection"], "close") {
		sr.Header["Connection"] = []string{"close"}
	}

	body, length, err := outgoingBody(req)
	if err != nil {
		return err
	}
	if body == nil {
		err = x.s.WriteRequest(sr)
		if err == nil {
			x.wroteHead()
			x.wroteRequest(nil)
		}
		return err
	}
	if len(req.Trailer) > 0 || (len(req.TransferEncoding) > 0 && req.TransferEncoding[0] == "chunked") {
		length = -1
	}
	if len(req.Trailer) > 0 {
		names := make([]string, 0, len(req.Trailer))
		for k := range req.Trailer {
			names = append(names, http.CanonicalHeaderKey(k))
		}
		sr.Header["Trailer"] = []string{strings.Join(names, ", ")}
		x.trailers = true
	}
	expect := httpguts.HeaderValuesContainsToken(req.Header.Values("Expect"), "100-continue")
	if length >= 0 && length <= smallRequestBody && !expect {
		// Small and known: one write, head and body.
		buf := make([]byte, length+1) // one more, to catch a body longer than declared
		n, rerr := io.ReadFull(body, buf)
		switch {
		case rerr == nil:
			return fmt.Errorf("%w: more than %d bytes", ErrBodyLength, length)
		case rerr != io.ErrUnexpectedEOF && rerr != io.EOF:
			return fmt.Errorf("reading the request body: %w", rerr)
		case int64(n) != length:
			return fmt.Errorf("%w: %d bytes instead of %d", ErrBodyLength, n, length)
		}
		closeBody(req)
		sr.Body = buf[:n]
		if err := x.s.WriteRequest(sr); err != nil {
			return err
		}
		x.wroteHead()
		x.wroteRequest(nil)
		return nil
	}
	if length >= 0 {
		sr.Header["Content-Length"] = []string{strconv.FormatInt(length, 10)}
	}
	err = x.s.WriteRequestMetadata(sr)
	if errors.Is(err, symsock.ErrNativeStreamUnsupported) {
		return x.writeBuffered(body)
	}
	if err != nil {
		return err
	}
	x.wroteHead()
	x.body, x.length = body, length
	if expect {
		x.got100 = make(chan struct{})
		x.waitFinal = make(chan struct{})
		if x.trace != nil && x.trace.Wait100Continue != nil {
			x.trace.Wait100Continue()
		}
	}
	return nil
}

// writeBuffered sends a body of unknown length whole, for a socket locked to HTTP/1.0.
func (x *exchange) writeBuffered(body io.Reader) error {
	limit := x.rt.MaxBufferedBody
	if limit <= 0 {
		limit = DefaultMaxBufferedBody
	}
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	closeBody(x.req)
	if err != nil {
		return fmt.Errorf("reading the request body: %w", err)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%w: more than %d bytes", ErrRequestTooLarge, limit)
	}
	delete(x.sreq.Header, "Trailer")
	x.sreq.Body = data
	if err := x.s.WriteRequest(&x.sreq); err != nil {
		return err
	}
	x.wroteHead()
	x.wroteRequest(nil)
	return nil
}

// outgoingBody returns the body to send and its length (-1 unknown), or a nil reader for no body. A non-nil Body
// with ContentLength 0 may be empty or of unknown length: like net/http, it is probed for one byte, briefly, and a
// body that does not answer in time is sent chunked.
func outgoingBody(req *http.Request) (io.Reader, int64, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, 0, nil
	}
	if req.ContentLength > 0 {
		return req.Body, req.ContentLength, nil
	}
	if req.ContentLength < 0 {
		return req.Body, -1, nil
	}
	p := &bodyProbe{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.n, p.err = io.ReadFull(req.Body, p.one[:])
	}()
	t := time.NewTimer(bodyProbeTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		switch {
		case p.err == io.EOF:
			closeBody(req)
			return nil, 0, nil
		case p.err != nil:
			return nil, 0, fmt.Errorf("reading the request body: %w", p.err)
		}
	case <-t.C:
	}
	return io.MultiReader(p, req.Body), -1, nil
}

// bodyProbeTimeout is how long a body of unknown length gets to show whether it is empty (net/http's value).
const bodyProbeTimeout = 200 * time.Millisecond

// bodyProbe is the first byte of a request body, read ahead by outgoingBody.
type bodyProbe struct {
	done chan struct{}
	one  [1]byte
	n    int
	err  error
	used bool
}

func (p *bodyProbe) Read(b []byte) (int, error) {
	<-p.done
	if p.used || p.n == 0 {
		if p.err != nil && p.err != io.EOF {
			return 0, p.err
		}
		return 0, io.EOF
	}
	p.used = true
	return copy(b, p.one[:p.n]), nil
}

// requestTarget is the request-target of req: origin form, authority form for CONNECT.
func requestTarget(req *http.Request) string {
	if req.Method == http.MethodConnect && req.URL.Path == "" {
		if req.URL.Host != "" {
			return req.URL.Host
		}
		return req.Host
	}
	return req.URL.RequestURI()
}

// bodyBuffers holds the buffers request bodies are streamed through.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeBody streams the request body (after the head) and ends the message; it runs in its own goroutine so that
// the response can be read meanwhile.
func (x *exchange) writeBody(got100, final <-chan struct{}) (err error) {
	defer x.closeBody()
	defer func() {
		if err != nil && err != errBodyWithheld {
			_ = x.s.Close() // the message is incomplete: the connection cannot be used again
		}
		x.wroteRequest(err)
	}()
	if got100 != nil {
		wait := x.rt.ExpectContinueTimeout
		if wait <= 0 {
			wait = DefaultExpectContinueTimeout
		}
		t := time.NewTimer(wait)
		select {
		case <-got100:
		case <-t.C:
		case <-final:
		}
		t.Stop()
		select {
		case <-final:
			// The server answered without asking for the body (RFC 9110 section 10.1.1): a chunked body
			// ends empty; a Content-Length one cannot, so the connection closes after the response.
			if x.length < 0 {
				return x.s.WriteEndOfMessage()
			}
			return errBodyWithheld
		default:
		}
	}
	msg := symsock.Request{}
	bp := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(bp)
	buf := *bp
	var sent int64
	for {
		n, rerr := x.body.Read(buf)
		if n > 0 {
			if x.length >= 0 && sent+int64(n) > x.length {
				return fmt.Errorf("%w: more than %d bytes", ErrBodyLength, x.length)
			}
			sent += int64(n)
			msg.Body = buf[:n]
			if err := x.s.Write(&msg); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading the request body: %w", rerr)
		}
	}
	if x.length >= 0 && sent != x.length {
		return fmt.Errorf("%w: %d bytes instead of %d", ErrBodyLength, sent, x.length)
	}
	if x.trailers {
		msg.Body = nil
		msg.Trailer = x.req.Trailer
		return x.s.WriteTrailers(&msg)
	}
	return x.s.WriteEndOfMessage()
}

func (x *exchange) wroteHead() {
	if x.trace != nil && x.trace.WroteHeaders != nil {
		x.trace.WroteHeaders()
	}
}

func (x *exchange) wroteRequest(err error) {
	if x.trace != nil && x.trace.WroteRequest != nil {
		x.trace.WroteRequest(httptrace.WroteRequestInfo{Err: err})
	}
}

// readResponse reads the final response head (passing 1xx responses to the trace) and wraps its body.
func (x *exchange) readResponse() (*http.Response, error) {
	x.sres = &symsock.Response{}
	first := true
	for {
		if err := x.s.ReadResponse(x.sres); err != nil {
			return nil, err
		}
		if first {
			first = false
			if x.trace != nil && x.trace.GotFirstResponseByte != nil {
				x.trace.GotFirstResponseByte()
			}
		}
		code := x.sres.Status
		if code >= 200 || code == http.StatusSwitchingProtocols {
			break
		}
		if code == http.StatusContinue && x.got100 != nil && !x.saw100 {
			close(x.got100)
			x.saw100 = true
			if x.trace != nil && x.trace.Got100Continue != nil {
				x.trace.Got100Continue()
			}
			continue
		}
		if x.trace != nil && x.trace.Got1xxResponse != nil {
			if err := x.trace.Got1xxResponse(code, textproto.MIMEHeader(x.sres.Header)); err != nil {
				return nil, err
			}
		}
	}
	x.finalArrived()
	sres := x.sres
	proto := x.s.Proto()
	res := &http.Response{
		Status:     strconv.Itoa(sres.Status) + " " + sres.Reason,
		StatusCode: sres.Status,
		Proto:      proto,
		ProtoMajor: 1,
		Header:     sres.Header,
		Request:    x.req,
		Close:      !x.s.KeepAlive(),
	}
	if res.Header == nil {
		res.Header = make(http.Header)
	}
	if proto == "HTTP/1.1" {
		res.ProtoMinor = 1
	}
	res.ContentLength = x.s.ContentLength()
	if x.req.Method == http.MethodHead {
		res.ContentLength = -1
		if v := res.Header["Content-Length"]; len(v) == 1 {
			if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
				res.ContentLength = n
			}
		}
	}
	if _, chunked := res.Header["Transfer-Encoding"]; chunked && res.ContentLength < 0 && x.req.Method != http.MethodHead {
		res.TransferEncoding = []string{"chunked"}
		delete(res.Header, "Transfer-Encoding")
	}
	res.Trailer = declaredTrailers(res.Header)
	if sres.Status == http.StatusSwitchingProtocols || x.req.Method == http.MethodConnect && sres.Status/100 == 2 {
		return x.switchProtocols(res)
	}
	if x.s.ReadState() == symsock.ReadEmpty && len(sres.Body) == 0 {
		// The whole message is read (no body, or an empty one).
		res.Body = http.NoBody
		x.copyTrailers(res)
		if err := x.done(); err != nil {
			return nil, err
		}
		return res, nil
	}
	res.Body = &responseBody{x: x, res: res, src: x.s.BodyReader(sres)}
	return res, nil
}

// switchProtocols completes a 101 Switching Protocols or a 2xx answer to CONNECT the way net/http's Transport does:
// the response Body is the connection itself (an io.ReadWriteCloser carrying the new protocol, see
// Socket.Hijack), and the RoundTripper's socket is used up.
func (x *exchange) switchProtocols(res *http.Response) (*http.Response, error) {
	if err := x.done(); err != nil {
		_ = x.s.Close()
		return nil, err
	}
	conn, err := x.s.Hijack()
	x.rt.handedOver.Store(err == nil)
	if err != nil {
		// done gave up on a request body still being written: the stream is not clean.
		return nil, fmt.Errorf("taking over the connection after %d: %w", res.StatusCode, err)
	}
	res.Body = conn
	res.ContentLength = -1
	return res, nil
}

func (x *exchange) copyTrailers(res *http.Response) {
	for k, v := range x.sres.Trailer {
		if res.Trailer == nil {
			res.Trailer = make(http.Header)
		}
		res.Trailer[k] = v
	}
}

// responseBody is an http.Response.Body read from the socket as the caller reads it. Close may come from another
// goroutine while a Read blocks: it then aborts the exchange, which unblocks the Read.
type responseBody struct {
	x       *exchange
	res     *http.Response
	src     io.Reader
	mu      sync.Mutex
	reading bool  // a Read is in src.Read (without mu)
	err     error // sticky: io.EOF at the end, or the failure
	closed  bool
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		b.mu.Unlock()
		return 0, b.err
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.src.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	switch {
	case b.closed: // Close aborted the exchange meanwhile
		return n, http.ErrBodyReadAfterClose
	case err == io.EOF:
		b.x.copyTrailers(b.res)
		b.err = io.EOF
		if derr := b.x.done(); derr != nil {
			b.err = derr
			return n, derr
		}
		return n, io.EOF
	case err != nil:
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		b.err = b.x.fail(err)
		return n, b.err
	}
	return n, nil
}

// Close ends the exchange: the rest of the body is drained (up to RoundTripper.MaxDrainBytes) so the connection
// can carry the next request, or the socket is closed.
func (b *responseBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.err != nil {
		return nil
	}
	limit := b.x.rt.MaxDrainBytes
	if limit == 0 {
		limit = DefaultMaxDrainBytes
	}
	if limit > 0 && !b.reading {
		n, err := io.Copy(io.Discard, io.LimitReader(b.src, limit+1))
		if err == nil && n <= limit {
			b.err = io.EOF
			_ = b.x.done()
			return nil
		}
	}
	b.err = b.x.fail(errors.New("response body closed before its end"))
	return nil
}
