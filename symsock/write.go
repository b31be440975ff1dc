package symsock

import (
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Framing of a streamed message being written.
const (
	frameChunked uint8 = iota
	frameLength
	frameNone
)

// smallBody is the size up to which a body is copied behind the head into one write rather than sent with writev.
const smallBody = 4 << 10

// writeScratch holds the write side's reusable memory; it belongs to the running write operation.
type writeScratch struct {
	buf  []byte
	keys []string
	iov  [3][]byte // backing of bufs, so a writev allocates nothing
	bufs net.Buffers
}

// userFields is what the socket needs from the headers of a message it writes.
type userFields struct {
	hasLength bool
	length    int64
	hasTE     bool
	connClose bool
	connKeep  bool
}

// sortHeader validates h, sorts its names into the scratch and returns what the socket needs from it.
func (ws *writeScratch) sortHeader(h http.Header, what string) (userFields, error) {
	var uf userFields
	ws.keys = ws.keys[:0]
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		if k == "" {
			return uf, invalid("empty %s name", what)
		}
		for i := 0; i < len(k); i++ {
			if !isTchar(k[i]) {
				return uf, invalid("%s name %q", what, k)
			}
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
					return uf, invalid("%s %s: control byte %q in value", what, k, c)
				}
			}
		}
		switch {
		case strings.EqualFold(k, "Content-Length"):
			if uf.hasLength || len(vs) != 1 {
				return uf, invalid("more than one Content-Length")
			}
			n, ok := parseContentLength(trimOWS(vs[0]))
			if !ok {
				return uf, invalid("Content-Length %q", vs[0])
			}
			uf.hasLength, uf.length = true, n
		case strings.EqualFold(k, "Transfer-Encoding"):
			uf.hasTE = true
		case strings.EqualFold(k, "Connection"):
			uf.connClose = uf.connClose || hasToken(vs, "close")
			uf.connKeep = uf.connKeep || hasToken(vs, "keep-alive")
		}
		ws.keys = append(ws.keys, k)
	}
	slices.Sort(ws.keys)
	return uf, nil
}

// appendFields appends the sorted fields of h (as sorted by sortHeader).
func (ws *writeScratch) appendFields(b []byte, h http.Header) []byte {
	for _, k := range ws.keys {
		for _, v := range h[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, trimOWS(v)...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// send writes parts on the transport in one system call (writev for several), skipping empty ones.
func (s *Socket) send(parts ...[]byte) error {
	ws := &s.writeScratch
	ws.bufs = ws.iov[:0]
	for _, p := range parts {
		if len(p) > 0 {
			ws.bufs = append(ws.bufs, p)
		}
	}
	s.wlock.Lock()
	defer s.wlock.Unlock()
	var err error
	switch len(ws.bufs) {
	case 0:
	case 1:
		_, err = s.conn.Write(ws.bufs[0])
	default:
		_, err = ws.bufs.WriteTo(s.conn)
	}
	if err != nil {
		err = s.ioError(err)
		s.closeTransport()
	}
	return err
}

// beginWrite checks the write state under s.mu and marks a write as running.
func (s *Socket) beginWrite(ok func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hijacked || s.switched {
		return s.usable()
	}
	if err := ok(); err != nil {
		return err
	}
	if s.writing {
		return ErrOutOfOrder
	}
	if s.closed {
		return errClosed
	}
	s.writing = true
	return nil
}

func (s *Socket) abortWrite(err error) error {
	s.mu.Lock()
	s.writing = false
	s.mu.Unlock()
	return err
}

// serverExchange is a snapshot of what a server's response depends on.
type serverExchange struct {
	minor       int
	keepAlive   bool
	head        bool
	connect     bool
	upgrade     bool
	bodyUnread  bool
	continueReq bool // the client waits for 100 Continue that was not sent
	unread      int64
}

func (s *Socket) responseAllowed() func() error {
	return func() error {
		if s.role != roleServer {
			return ErrWrongDirection
		}
		if s.wstate != WriteEmpty && s.wstate != WriteContinueIssued {
			return ErrOutOfOrder
		}
		return nil
	}
}

func (s *Socket) exchange() serverExchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return serverExchange{
		minor:       s.minor,
		keepAlive:   s.keepAlive,
		head:        s.head,
		connect:     s.connect,
		upgrade:     s.upgradeReq,
		bodyUnread:  s.rstate == ReadMessageReady || s.rstate == ReadBodyReady || s.reading,
		continueReq: s.continueReq && s.wstate != WriteContinueIssued,
		unread:      s.unread,
	}
}

// persistAfter decides whether the connection survives the response: an unread body the socket will not drain
// (over the discard limit, or one the client holds back waiting for 100 Continue) forces a close.
func (s *Socket) persistAfter(x serverExchange, uf userFields) bool {
	ka := x.keepAlive && !uf.connClose
	if ka && x.bodyUnread {
		if x.continueReq || x.unread > s.cfg.discardLimit || s.cfg.discardLimit == 0 {
			ka = false
		}
	}
	return ka
}

// appendStatusLine appends the status line and the Connection field the socket adds.
func appendStatusLine(b []byte, res *Response, x serverExchange, ka bool, uf userFields) []byte {
	if x.minor == 0 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	b = strconv.AppendInt(b, int64(res.Status), 10)
	b = append(b, ' ')
	if res.Reason != "" {
		b = append(b, res.Reason...)
	} else {
		b = append(b, http.StatusText(res.Status)...)
	}
	b = append(b, "\r\n"...)
	if !ka && !uf.connClose {
		b = append(b, "Connection: close\r\n"...)
	} else if ka && x.minor == 0 && !uf.connKeep {
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	return b
}

// validStatus checks the status and reason of a response; final is false for WriteResponse, which also takes the
// 1xx statuses other than 100.
func validStatus(res *Response, final bool) error {
	switch {
	case res.Status == 100:
		return invalid("status 100: use WriteResponseContinue")
	case res.Status > 100 && res.Status < 200 && final:
		return invalid("status %d: a streamed response must be final; send 1xx with WriteResponse", res.Status)
	case res.Status < 100 || res.Status > 999:
		return invalid("status %d", res.Status)
	}
	for i := 0; i < len(res.Reason); i++ {
		if c := res.Reason[i]; c < ' ' && c != '\t' || c == 0x7f {
			return invalid("control byte %q in reason", c)
		}
	}
	return nil
}

// bodyForbidden reports whether a response may carry no body at all (RFC 9110 sections 15.3.5, 15.4.5, 9.3.6).
func bodyForbidden(status int, connect bool) bool {
	return status == 204 || status == 304 || connect && status < 300
}

// beginResponse starts WriteResponse and WriteResponseMetadata: role and state checks, then the checks common to
// both on res. On error nothing was written and no state changed.
func (s *Socket) beginResponse(res *Response, final bool) (x serverExchange, uf userFields, forbidden bool, err error) {
	if res == nil {
		return x, uf, false, invalid("nil *Response")
	}
	if err := s.beginWrite(s.responseAllowed()); err != nil {
		return x, uf, false, err
	}
	x = s.exchange()
	uf, err = s.writeScratch.sortHeader(res.Header, "header")
	if err == nil {
		err = validStatus(res, final)
	}
	switch {
	case err != nil:
	case uf.hasTE:
		err = invalid("Transfer-Encoding is set by the socket")
	case uf.hasLength && (res.Status == 204 || x.connect && res.Status < 300):
		err = invalid("status %d takes no Content-Length", res.Status)
	}
	if err != nil {
		return x, uf, false, s.abortWrite(err)
	}
	return x, uf, bodyForbidden(res.Status, x.connect), nil
}

// WriteResponse writes res whole as the answer to the request just read; the write state becomes "finished" and
// the read state "empty". It adds "Content-Length" (unless given, in which case it must match the body) and
// "Connection: close" when the exchange is not persistent, after which the connection is closed. Responses to HEAD
// carry the Content-Length but no body; 204, 304 and 2xx to CONNECT must have an empty body. It fails with
// ErrWrongDirection unless the socket is a server and with ErrOutOfOrder unless the write state is "empty" or
// "continue_issued".
//
// Status 1xx: 100 goes through WriteResponseContinue. Other interim responses (103 Early Hints) are written as they
// are and move no state: the final response follows. A 101 Switching Protocols needs a request that asked to
// upgrade (UpgradeDesired) and an Upgrade header; like a 2xx answer to CONNECT it ends HTTP on the connection, and
// the caller takes the stream with Hijack (any other operation fails with ErrProtocolSwitched).
func (s *Socket) WriteResponse(res *Response) error {
	x, uf, forbidden, err := s.beginResponse(res, false)
	if err != nil {
		return err
	}
	if res.Status < 200 {
		return s.writeInformational(res, x, uf)
	}
	ws := &s.writeScratch
	switch {
	case forbidden && len(res.Body) > 0:
		err = invalid("status %d takes no body", res.Status)
	case uf.hasLength && !x.head && res.Status != 304 && uf.length != int64(len(res.Body)):
		err = invalid("Content-Length %d but a body of %d bytes", uf.length, len(res.Body))
	}
	if err != nil {
		return s.abortWrite(err)
	}
	tunnel := x.connect && res.Status < 300
	ka := tunnel || s.persistAfter(x, uf)
	b := appendStatusLine(ws.buf[:0], res, x, ka, uf)
	b = ws.appendFields(b, res.Header)
	if !uf.hasLength && !forbidden {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(res.Body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	body := res.Body
	if x.head || forbidden {
		body = nil
	}
	if len(body) <= smallBody {
		b = append(b, body...)
		body = nil
	}
	ws.buf = b
	s.finishResponse(x, ka)
	if tunnel {
		// A CONNECT tunnel starts after this head: the caller takes the stream with Hijack.
		s.mu.Lock()
		s.switched = true
		s.mu.Unlock()
	}
	err = s.send(b, body)
	return s.afterResponse(ka, err)
}

// writeInformational writes a 1xx response (WriteResponse has checked the role, the state and that it is not
// 100). A 101 ends HTTP on the connection: the request must have asked to upgrade and the response must name the
// protocol in Upgrade; afterwards the caller takes the stream with Hijack. Any other 1xx (103 Early Hints) is
// interim: the states do not move and the final response follows. HTTP/1.0 clients get no 1xx at all (RFC 9110
// section 15.2).
func (s *Socket) writeInformational(res *Response, x serverExchange, uf userFields) error {
	var err error
	switch {
	case len(res.Body) > 0 || uf.hasLength:
		err = invalid("status %d takes no body and no Content-Length", res.Status)
	case x.minor == 0:
		err = invalid("status %d to an HTTP/1.0 request", res.Status)
	case res.Status == 101 && !x.upgrade:
		err = invalid("101 Switching Protocols to a request that did not ask to upgrade")
	case res.Status == 101 && len(headerValues(res.Header, "Upgrade")) == 0:
		err = invalid("101 Switching Protocols without an Upgrade header")
	}
	if err != nil {
		return s.abortWrite(err)
	}
	ws := &s.writeScratch
	b := appendStatusLine(ws.buf[:0], res, x, true, uf)
	b = ws.appendFields(b, res.Header)
	b = append(b, "\r\n"...)
	ws.buf = b
	if res.Status == 101 {
		s.mu.Lock()
		s.switched = true
		s.wstate = WriteFinished
		s.rstate = ReadEmpty
		s.continueReq = false
		s.mu.Unlock()
	}
	return s.abortWrite(s.send(b))
}

// finishResponse moves the states at the start of the final write: "finished" and "empty", with the unread rest of
// the request body to be drained before the next request.
func (s *Socket) finishResponse(x serverExchange, ka bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wstate = WriteFinished
	s.rstate = ReadEmpty
	s.discard = x.bodyUnread && ka
	s.continueReq = false
	s.keepAlive = ka
}

func (s *Socket) afterResponse(ka bool, err error) error {
	s.mu.Lock()
	s.writing = false
	s.mu.Unlock()
	if !ka {
		s.closeTransport()
	}
	return err
}

// WriteResponseContinue writes "HTTP/1.1 100 Continue" to a request that asked for it (see ContinueRequired)
// whose body is not read yet; the write state becomes "continue_issued". Otherwise it writes nothing and fails
// with ErrWrongDirection (not a server) or ErrOutOfOrder.
func (s *Socket) WriteResponseContinue() error {
	err := s.beginWrite(func() error {
		if s.role != roleServer {
			return ErrWrongDirection
		}
		if s.wstate != WriteEmpty || !s.continueReq || (s.rstate != ReadMessageReady && s.rstate != ReadBodyReady) {
			return ErrOutOfOrder
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.wstate = WriteContinueIssued
	s.mu.Unlock()
	err = s.send([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	return s.abortWrite(err)
}

// WriteResponseMetadata writes the head of a streamed response ("Transfer-Encoding: chunked", or identity when res
// carries a Content-Length header, or no body framing for HEAD, 204 and 304) and moves the write state to
// "metadata_issued"; the body follows with Write. A chunked response to an HTTP/1.0 request fails with
// ErrNativeStreamUnsupported and changes nothing: use WriteResponse.
func (s *Socket) WriteResponseMetadata(res *Response) error {
	x, uf, forbidden, err := s.beginResponse(res, true)
	if err != nil {
		return err
	}
	ws := &s.writeScratch
	frame := frameChunked
	switch {
	case x.head || forbidden:
		frame = frameNone
	case uf.hasLength:
		frame = frameLength
	case x.minor == 0:
		err = ErrNativeStreamUnsupported
	}
	if err != nil {
		return s.abortWrite(err)
	}
	ka := s.persistAfter(x, uf)
	b := appendStatusLine(ws.buf[:0], res, x, ka, uf)
	b = ws.appendFields(b, res.Header)
	if frame == frameChunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "\r\n"...)
	ws.buf = b
	s.mu.Lock()
	s.wstate = WriteMetadataIssued
	s.wframe, s.wremain = frame, uf.length
	s.wdropSilent = x.head
	s.keepAlive = ka
	s.mu.Unlock()
	err = s.send(b)
	return s.abortWrite(err)
}

// streamAllowed is the state check of Write, WriteTrailers and WriteEndOfMessage.
func (s *Socket) streamAllowed() error {
	if s.wstate != WriteMetadataIssued {
		return ErrOutOfOrder
	}
	return nil
}

// Write sends m.Body as the next piece of the streamed message (a chunk, when chunked). An empty body writes
// nothing. It fails with ErrOutOfOrder unless the write state is "metadata_issued".
func (s *Socket) Write(m Message) error {
	if m == nil {
		return invalid("nil Message")
	}
	if err := s.beginWrite(s.streamAllowed); err != nil {
		return err
	}
	_, _, bp := m.parts()
	body := *bp
	if len(body) == 0 {
		return s.abortWrite(nil)
	}
	ws := &s.writeScratch
	switch s.wframe {
	case frameNone:
		if s.wdropSilent {
			return s.abortWrite(nil)
		}
		return s.abortWrite(invalid("this response takes no body"))
	case frameLength:
		if int64(len(body)) > s.wremain {
			return s.abortWrite(invalid("body exceeds the Content-Length by %d bytes", int64(len(body))-s.wremain))
		}
		s.wremain -= int64(len(body))
		return s.abortWrite(s.send(body))
	}
	b := strconv.AppendUint(ws.buf[:0], uint64(len(body)), 16)
	b = append(b, "\r\n"...)
	if len(body) <= smallBody {
		b = append(b, body...)
		b = append(b, "\r\n"...)
		ws.buf = b
		return s.abortWrite(s.send(b))
	}
	ws.buf = b
	return s.abortWrite(s.send(b, body, crlf))
}

var crlf = []byte("\r\n")

// WriteTrailers ends the streamed message with m.Trailer as trailer fields (chunked only; a Content-Length message
// accepts no trailers). A server's write state becomes "finished" (read state "empty"), a client's "empty".
func (s *Socket) WriteTrailers(m Message) error { return s.writeEnd(m) }

// WriteEndOfMessage ends the streamed message without trailers, like WriteTrailers.
func (s *Socket) WriteEndOfMessage() error { return s.writeEnd(nil) }

// writeEnd is WriteTrailers (m != nil) and WriteEndOfMessage (m == nil).
func (s *Socket) writeEnd(m Message) error {
	if err := s.beginWrite(s.streamAllowed); err != nil {
		return err
	}
	ws := &s.writeScratch
	var trailer http.Header
	if m != nil {
		_, tp, _ := m.parts()
		trailer = *tp
	}
	b := ws.buf[:0]
	switch s.wframe {
	case frameChunked:
		if _, err := ws.sortHeader(trailer, "trailer"); err != nil {
			return s.abortWrite(err)
		}
		b = append(b, "0\r\n"...)
		b = ws.appendFields(b, trailer)
		b = append(b, "\r\n"...)
	case frameLength:
		if len(trailer) > 0 {
			return s.abortWrite(invalid("trailers need a chunked message, not a Content-Length"))
		}
		if s.wremain != 0 {
			return s.abortWrite(invalid("body %d bytes short of the Content-Length", s.wremain))
		}
	}
	ws.buf = b
	s.mu.Lock()
	server := s.role == roleServer
	s.mu.Unlock()
	if !server {
		s.mu.Lock()
		s.wstate = WriteEmpty
		s.mu.Unlock()
		var err error
		if len(b) > 0 {
			err = s.send(b)
		}
		return s.abortWrite(err)
	}
	x := s.exchange()
	ka := s.persistAfter(x, userFields{})
	s.finishResponse(x, ka)
	var err error
	if len(b) > 0 {
		err = s.send(b)
	}
	return s.afterResponse(ka, err)
}

// requestAllowed is the role and state check of WriteRequest and WriteRequestMetadata; the role is claimed even when
// the state check fails, as in Boost.Http: the first request-side call decides the role.
func (s *Socket) requestAllowed() error {
	if s.role == roleServer {
		return ErrWrongDirection
	}
	if s.role == roleNone {
		s.role = roleClient
	}
	if s.wstate != WriteEmpty {
		return ErrOutOfOrder
	}
	return nil
}

func validRequestLine(req *Request) error {
	if req.Method == "" {
		return invalid("empty method")
	}
	for i := 0; i < len(req.Method); i++ {
		if !isTchar(req.Method[i]) {
			return invalid("method %q", req.Method)
		}
	}
	if req.Target == "" {
		return invalid("empty target")
	}
	for i := 0; i < len(req.Target); i++ {
		if !isTargetByte(req.Target[i]) {
			return invalid("target %q", req.Target)
		}
	}
	if req.Target == "*" && req.Method != "OPTIONS" {
		return invalid("target * with %s (only OPTIONS)", req.Method)
	}
	return nil
}

func (s *Socket) appendRequestLine(b []byte, req *Request) []byte {
	b = append(b, req.Method...)
	b = append(b, ' ')
	b = append(b, req.Target...)
	s.mu.Lock()
	lock10 := s.lock10
	s.mu.Unlock()
	if lock10 {
		return append(b, " HTTP/1.0\r\n"...)
	}
	return append(b, " HTTP/1.1\r\n"...)
}

func (s *Socket) pushMethod(method string) {
	class := methodOther
	switch method {
	case "HEAD":
		class = methodHead
	case "CONNECT":
		class = methodConnect
	}
	s.mu.Lock()
	s.methods = append(s.methods, class)
	s.mu.Unlock()
}

// beginRequest starts WriteRequest and WriteRequestMetadata: role and state checks, then the checks common to both
// on req. On error nothing was written and no state changed (but the role, which the first request-side call decides).
func (s *Socket) beginRequest(req *Request) (userFields, error) {
	if req == nil {
		return userFields{}, invalid("nil *Request")
	}
	if err := s.beginWrite(s.requestAllowed); err != nil {
		return userFields{}, err
	}
	uf, err := s.writeScratch.sortHeader(req.Header, "header")
	if err == nil {
		err = validRequestLine(req)
	}
	if err == nil && uf.hasTE {
		err = invalid("Transfer-Encoding is set by the socket")
	}
	if err != nil {
		return uf, s.abortWrite(err)
	}
	return uf, nil
}

// WriteRequest writes req whole, making an undecided socket the client: the request line (HTTP/1.1, or HTTP/1.0
// when locked), "Content-Length" when the body is not empty, the headers sorted by name, and the body. The write
// state stays "empty", so requests may be pipelined. A Content-Length header that disagrees with the body or a
// Transfer-Encoding header is ErrInvalidMessage. No Host header is added.
func (s *Socket) WriteRequest(req *Request) error {
	uf, err := s.beginRequest(req)
	if err != nil {
		return err
	}
	if uf.hasLength && uf.length != int64(len(req.Body)) {
		return s.abortWrite(invalid("Content-Length %d but a body of %d bytes", uf.length, len(req.Body)))
	}
	ws := &s.writeScratch
	b := s.appendRequestLine(ws.buf[:0], req)
	if len(req.Body) > 0 && !uf.hasLength {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(req.Body)), 10)
		b = append(b, "\r\n"...)
	}
	b = ws.appendFields(b, req.Header)
	b = append(b, "\r\n"...)
	body := req.Body
	if len(body) <= smallBody {
		b = append(b, body...)
		body = nil
	}
	ws.buf = b
	s.pushMethod(req.Method)
	return s.abortWrite(s.send(b, body))
}

// WriteRequestMetadata writes the head of a streamed request ("Transfer-Encoding: chunked", or identity when req
// carries a Content-Length header) and moves the write state to "metadata_issued"; the body follows with Write and
// ends with WriteTrailers or WriteEndOfMessage. It fails with ErrNativeStreamUnsupported when locked to HTTP/1.0.
func (s *Socket) WriteRequestMetadata(req *Request) error {
	uf, err := s.beginRequest(req)
	if err != nil {
		return err
	}
	s.mu.Lock()
	lock10 := s.lock10
	s.mu.Unlock()
	if lock10 && !uf.hasLength {
		return s.abortWrite(ErrNativeStreamUnsupported)
	}
	ws := &s.writeScratch
	b := s.appendRequestLine(ws.buf[:0], req)
	frame := frameLength
	if !uf.hasLength {
		frame = frameChunked
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = ws.appendFields(b, req.Header)
	b = append(b, "\r\n"...)
	ws.buf = b
	s.pushMethod(req.Method)
	s.mu.Lock()
	s.wstate = WriteMetadataIssued
	s.wframe, s.wremain = frame, uf.length
	s.wdropSilent = false
	s.mu.Unlock()
	return s.abortWrite(s.send(b))
}
