package symsock

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

type bodyKind uint8

const (
	bodyNone     bodyKind = iota
	bodyLength            // Content-Length
	bodyChunked           // Transfer-Encoding: chunked
	bodyUntilEOF          // a response delimited by the end of the connection
)

type chunkPhase uint8

const (
	phaseSize     chunkPhase = iota // expecting a chunk-size line
	phaseData                       // inside chunk data
	phaseDataEnd                    // expecting the CRLF after chunk data
	phaseTrailers                   // after the last chunk: trailer section
)

// bodyFraming is the read side's position in the body of the message being read.
type bodyFraming struct {
	kind      bodyKind
	phase     chunkPhase
	remaining int64 // bodyLength: bytes left; bodyChunked: bytes left in the current chunk
	lastChunk int64 // bodyChunked: size of the last chunk, to predict the next framing
	total     int64 // body bytes received so far
	done      bool
}

// directReadMin is the spare capacity from which body bytes are read straight into the caller's memory instead of
// through the input buffer.
const directReadMin = 4 << 10

// ReadRequest reads the next request into req, making an undecided socket the server. It clears req (see
// Request), reads the start line and headers (read state "message_ready") and appends whatever body bytes are
// already buffered, so it may return in "body_ready" or "finished"; read the rest with ReadSome or BodyReader.
//
// It fails with ErrWrongDirection on a client and ErrOutOfOrder unless the read state is "empty" (the previous
// response must be complete). If the previous request's body was not read, the rest is discarded first (up to the
// discard limit, else ErrUnreadBody and the connection is closed). A malformed request gets a 400 reply (431, 414
// or 413 for a limit), the connection is closed and the error wraps ErrParsing, ErrBufferExhausted or
// ErrBodyTooLarge. A peer that closes between requests gives io.EOF; inside a request, io.ErrUnexpectedEOF. Any
// failed read makes the socket undecided again.
func (s *Socket) ReadRequest(req *Request) error {
	if req == nil {
		return invalid("nil *Request")
	}
	discard, err := s.beginHeadRead(roleServer)
	if err != nil {
		return err
	}
	if discard {
		if err := s.drain(); err != nil {
			return s.endRead(err, true)
		}
	}
	req.Method, req.Target = "", ""
	return s.readMessage(req, true, func(head string) *protocolError { return s.parseRequestHead(head, req) })
}

// ReadResponse reads the next response into res, making an undecided socket the client. Like ReadRequest it clears
// res and appends the buffered body; at the end of the response the read state is "empty" again. A 1xx response
// comes back bodiless and does not answer the oldest outstanding request: call ReadResponse again for the final
// one. Responses to HEAD, 1xx, 204, 304 and 2xx to CONNECT have no body. After an HTTP/1.0 or non-persistent
// response the connection is closed. After a 101 Switching Protocols or a 2xx answer to CONNECT the stream carries
// another protocol: take it with Hijack (any other operation fails with ErrProtocolSwitched).
func (s *Socket) ReadResponse(res *Response) error {
	if res == nil {
		return invalid("nil *Response")
	}
	if _, err := s.beginHeadRead(roleClient); err != nil {
		return err
	}
	res.Reason = ""
	return s.readMessage(res, false, func(head string) *protocolError { return s.parseResponseHead(head, res) })
}

// beginHeadRead claims the role for ReadRequest (server) or ReadResponse (client) and marks a read as running. A
// server also learns whether the previous request's body must be drained first.
func (s *Socket) beginHeadRead(r role) (discard bool, err error) {
	s.endWatch()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hijacked || s.switched {
		return false, s.usable()
	}
	if s.role != roleNone && s.role != r {
		return false, ErrWrongDirection
	}
	if s.reading || s.rstate != ReadEmpty {
		return false, ErrOutOfOrder
	}
	if err := s.usable(); err != nil {
		return false, err
	}
	if r == roleServer {
		if s.role == roleNone {
			s.lock10 = false
		}
		if !s.writing {
			s.wstate = WriteFinished
		}
		discard, s.discard = s.discard, false
	}
	s.role = r
	s.reading = true
	return discard, nil
}

// readMessage clears m (reusing its maps and body capacity), reads a head, parses it with parse and appends the
// body bytes already buffered.
func (s *Socket) readMessage(m Message, server bool, parse func(head string) *protocolError) error {
	header, trailer, body := m.parts()
	resetHeader(header)
	if *trailer != nil {
		clear(*trailer)
	}
	*body = (*body)[:0]
	head, err := s.readHead(server)
	if err != nil {
		return s.readFailed(err, server, len(head) > 0)
	}
	if perr := parse(string(head[:s.headLen])); perr != nil {
		return s.readFailed(perr, server, true)
	}
	return s.afterHead(body, trailer)
}

func resetHeader(h *http.Header) {
	if *h == nil {
		*h = make(http.Header, 8)
	} else {
		clear(*h)
	}
}

// afterHead publishes the parsed head (read state "message_ready") and appends the body bytes already buffered.
func (s *Socket) afterHead(body *[]byte, trailer *http.Header) error {
	s.mu.Lock()
	s.rgen++
	s.rstate = ReadMessageReady
	if s.role == roleServer && !s.writing {
		s.wstate = WriteEmpty
	}
	s.mu.Unlock()
	_, err := s.pump(body, trailer, false, 0)
	return s.endRead(err, true)
}

// ReadSome appends more body bytes (and, at the end, trailers) of the message being read to m, blocking until at
// least one body byte arrived or the message ended. m must be the *Request on a server and the *Response on a
// client (else ErrWrongDirection). At the end of the message the read state becomes "finished" on a server and
// "empty" on a client. When m.Body has spare capacity, large bodies are read straight into it.
func (s *Socket) ReadSome(m Message) error {
	if err := s.startBodyRead(m, 0); err != nil {
		return err
	}
	_, trailer, body := m.parts()
	_, err := s.pump(body, trailer, true, 0)
	return s.endRead(err, true)
}

// startBodyRead checks that m may receive body bytes now and marks a read as running. gen, when not 0, is the
// message generation a BodyReader belongs to.
func (s *Socket) startBodyRead(m Message, gen uint64) error {
	s.endWatch()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hijacked {
		return ErrHijacked
	}
	if s.reading || (s.rstate != ReadMessageReady && s.rstate != ReadBodyReady) || (gen != 0 && gen != s.rgen) {
		return ErrOutOfOrder
	}
	switch v := m.(type) {
	case *Request:
		if v == nil || s.role != roleServer {
			return ErrWrongDirection
		}
	case *Response:
		if v == nil || s.role != roleClient {
			return ErrWrongDirection
		}
	default:
		return ErrWrongDirection
	}
	if s.closed {
		return errClosed
	}
	s.reading = true
	return nil
}

// endRead publishes the read side's progress after an operation and maps its error.
func (s *Socket) endRead(err error, inMessage bool) error {
	if err != nil {
		s.mu.Lock()
		server := s.role == roleServer
		s.mu.Unlock()
		return s.readFailed(err, server, inMessage)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reading = false
	if s.discard || s.rstate == ReadEmpty && s.role == roleServer {
		// The server answered meanwhile; the rest of the body is discarded before the next request.
		return nil
	}
	switch {
	case s.body.done:
		s.unread = 0
		s.continueReq = false
		if s.role == roleServer {
			s.rstate = ReadFinished
			return nil
		}
		s.rstate = ReadEmpty
		if !s.keepAlive && !s.switched {
			s.mu.Unlock()
			s.closeTransport()
			s.mu.Lock()
		}
	case s.body.kind == bodyChunked && s.body.phase == phaseTrailers:
		s.rstate = ReadBodyReady
	case s.body.kind == bodyLength:
		s.unread = s.body.remaining
	}
	return nil
}

// readFailed ends a read with an error: a server sends the canned reply of a protocol error (when its response
// has not started), the connection is closed when the stream can no longer be trusted, and the socket becomes
// undecided again. (Boost.Http kept the role after ErrBufferExhausted and left the socket wedged; here the limits
// close the connection like any other protocol error.)
func (s *Socket) readFailed(err error, server, inMessage bool) error {
	wasClosed := s.isClosed() // by Close (or a finished exchange) while the read was blocked
	var perr *protocolError
	isProto := errors.As(err, &perr)
	if isProto && server && !wasClosed {
		s.mu.Lock()
		canReply := !s.writing && (s.wstate == WriteEmpty || s.wstate == WriteContinueIssued || s.rstate == ReadEmpty)
		s.mu.Unlock()
		// TryLock: a response write blocked on a peer that does not read must not hold up the error.
		if canReply && perr.reply != nil && s.wlock.TryLock() {
			_ = s.conn.SetWriteDeadline(time.Now().Add(lingerTimeout))
			_, werr := s.conn.Write(perr.reply)
			s.wlock.Unlock()
			s.mu.Lock()
			already := s.closed
			s.closed = true
			s.mu.Unlock()
			if !already {
				if werr == nil {
					go s.lingerClose()
				} else {
					_ = s.conn.Close()
				}
			}
		}
	}
	if inMessage && errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	// A client has nothing left to do on a connection the server closed (IsOpen reports false).
	clientEOF := !server && errors.Is(err, io.EOF)
	if isProto || inMessage || clientEOF || wasClosed {
		s.closeTransport()
	}
	if wasClosed {
		err = closedError(err)
	}
	// The buffer and framing belong to the read operation until reading is cleared below.
	s.r, s.w = 0, 0
	s.body = bodyFraming{}
	s.mu.Lock()
	s.reading = false
	s.role = roleNone
	s.rstate = ReadEmpty
	if !s.writing {
		s.wstate = WriteEmpty
	}
	s.lock10 = false
	s.minor = 1
	s.keepAlive = true
	s.discard = false
	s.continueReq = false
	s.unread = 0
	s.methods = s.methods[:0]
	s.methodsHead = 0
	s.mu.Unlock()
	return err
}

// lingerTimeout bounds the delivery of a canned error reply and the wait for the peer to see it.
const lingerTimeout = 2 * time.Second

// lingerClose closes the connection after a canned error reply. Closing a TCP socket with unread input sends a
// reset, which may destroy the reply in flight, so it first shuts down the write side and discards input for a
// bounded time and amount, as net/http does. It runs on its own goroutine so the failed read returns at once; the
// socket is already marked closed.
func (s *Socket) lingerClose() {
	defer s.conn.Close()
	cw, ok := s.conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.CopyN(io.Discard, s.conn, 256<<10)
}

// fill reads more bytes from the transport into the input buffer, compacting or growing it when full.
func (s *Socket) fill() error { return s.fillAtMost(0) }

// fillAtMost is fill reading at most most bytes when most > 0.
func (s *Socket) fillAtMost(most int) error {
	if s.buf == nil {
		s.buf = make([]byte, s.cfg.bufferSize)
	}
	if s.r == s.w {
		s.r, s.w = 0, 0
	}
	if s.w == len(s.buf) {
		if s.r > 0 {
			s.w = copy(s.buf, s.buf[s.r:s.w])
			s.r = 0
		} else {
			limit := max(s.cfg.bufferSize, s.cfg.maxStartLine+s.cfg.maxHeader+8, s.cfg.maxChunkLine+8)
			if len(s.buf) >= limit {
				// The scanners refuse anything longer before the buffer is full.
				return parseErr(replyInvalidData, "input buffer full")
			}
			nb := make([]byte, min(2*len(s.buf), limit))
			s.w = copy(nb, s.buf[:s.w])
			s.buf = nb
		}
	}
	for {
		room := s.buf[s.w:]
		if most > 0 && most < len(room) {
			room = room[:most]
		}
		n, err := s.conn.Read(room)
		s.w += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readHead reads a start line and header section (of a request when request is set); s.headLen is set to the
// section length without the final empty line. The returned slice holds what was read so far when the error is
// not nil.
func (s *Socket) readHead(request bool) ([]byte, error) {
	sc := headScan{request: request}
	for {
		head, total, perr := sc.scan(s.buf[s.r:s.w], &s.cfg)
		if perr != nil {
			return s.buf[s.r:s.w], perr
		}
		if total > 0 {
			b := s.buf[s.r+sc.lead : s.r+total]
			s.headLen = head - sc.lead
			s.r += total
			return b, nil
		}
		if err := s.fill(); err != nil {
			return s.buf[s.r:s.w], err
		}
	}
}

// pump moves the body of the message being read forward: it appends body bytes to *dst (or skips them when dst is
// nil), at most limit bytes when limit > 0, and parses chunk framing and trailers. Without network it only uses
// buffered bytes; with it, it reads until at least one body byte arrived or the message ended.
func (s *Socket) pump(dst *[]byte, trailer *http.Header, network bool, limit int) (int, error) {
	fr := &s.body
	produced := 0
	for !fr.done {
		if limit > 0 && produced >= limit {
			return produced, nil
		}
		switch {
		case fr.kind == bodyNone:
			fr.done = true
			continue
		case fr.kind == bodyLength || fr.kind == bodyUntilEOF || fr.phase == phaseData:
			if avail := s.w - s.r; avail > 0 {
				k := int64(avail)
				if fr.kind != bodyUntilEOF {
					k = min(k, fr.remaining)
				}
				if limit > 0 {
					k = min(k, int64(limit-produced))
				}
				if err := s.countBody(k); err != nil {
					return produced, err
				}
				if dst != nil {
					*dst = append(*dst, s.buf[s.r:s.r+int(k)]...)
				}
				s.r += int(k)
				produced += int(k)
				s.advance(k)
				continue
			}
			if produced > 0 || !network {
				return produced, nil
			}
			if dst != nil {
				if spare := cap(*dst) - len(*dst); spare >= directReadMin && (limit == 0 || limit-produced >= directReadMin) {
					k := int64(spare)
					if fr.kind != bodyUntilEOF {
						k = min(k, fr.remaining)
					}
					if limit > 0 {
						k = min(k, int64(limit-produced))
					}
					// The read that ends a chunk also asks for the framing that should follow (its CRLF and the
					// next size line), which then moves to the buffer: no extra system call per chunk.
					extra := 0
					if fr.kind == bodyChunked && k == fr.remaining {
						room := int64(spare)
						if limit > 0 {
							room = min(room, int64(limit-produced))
						}
						if f := framingLen(fr.lastChunk, true); room >= k+int64(f) {
							extra = f
						}
					}
					b := *dst
					n, err := s.conn.Read(b[len(b) : len(b)+int(k)+extra])
					if n > int(k) {
						if s.buf == nil {
							s.buf = make([]byte, s.cfg.bufferSize)
						}
						s.r, s.w = 0, copy(s.buf, b[len(b)+int(k):len(b)+n])
						n = int(k)
					}
					if n > 0 {
						if cerr := s.countBody(int64(n)); cerr != nil {
							return produced, cerr
						}
						*dst = b[:len(b)+n]
						produced += n
						s.advance(int64(n))
						continue
					}
					if err != nil {
						if fr.kind == bodyUntilEOF && errors.Is(err, io.EOF) {
							fr.done = true
							continue
						}
						return produced, err
					}
					continue
				}
			}
			if err := s.fill(); err != nil {
				if fr.kind == bodyUntilEOF && errors.Is(err, io.EOF) {
					fr.done = true
					continue
				}
				return produced, err
			}
		case fr.phase == phaseSize:
			ok, err := s.chunkSizeLine()
			if err != nil {
				return produced, err
			}
			if !ok {
				if produced > 0 || !network {
					return produced, nil
				}
				if err := s.fillAtMost(s.framingRead(dst, limit)); err != nil {
					return produced, err
				}
			}
		case fr.phase == phaseDataEnd:
			if s.w-s.r < 2 {
				if produced > 0 || !network {
					return produced, nil
				}
				if err := s.fillAtMost(s.framingRead(dst, limit)); err != nil {
					return produced, err
				}
				continue
			}
			if s.buf[s.r] != '\r' || s.buf[s.r+1] != '\n' {
				return produced, parseErr(replyInvalidData, "chunk data not followed by CRLF (after %d body bytes)", fr.total)
			}
			s.r += 2
			fr.phase = phaseSize
		case fr.phase == phaseTrailers:
			head, total, perr := s.tscan.scan(s.buf[s.r:s.w], &s.cfg)
			if perr != nil {
				return produced, perr
			}
			if total == 0 {
				if produced > 0 || !network {
					return produced, nil
				}
				if err := s.fill(); err != nil {
					return produced, err
				}
				continue
			}
			if head > 0 {
				section := string(s.buf[s.r : s.r+head])
				var h http.Header
				if trailer != nil {
					if *trailer == nil {
						*trailer = make(http.Header)
					}
					h = *trailer
				} else {
					h = make(http.Header)
				}
				if perr := parseFields(section, h, nil, nil, true); perr != nil {
					return produced, perr
				}
			}
			s.r += total
			fr.done = true
		}
	}
	return produced, nil
}

// framingRead returns how many bytes to read at a chunk boundary when the caller reads large chunks into its own
// memory: exactly the rest of the framing expected if the next chunk has the size of the last one ("\r\n" ending
// the data, then the size line), less what is already buffered. The chunk's data then goes straight into the
// caller's memory instead of through the buffer and a copy. 0 means a normal buffered read (small chunks, no room
// in the caller's memory, or a wrong guess).
func (s *Socket) framingRead(dst *[]byte, limit int) int {
	fr := &s.body
	if dst == nil || fr.lastChunk < directReadMin {
		return 0
	}
	spare := cap(*dst) - len(*dst)
	if limit > 0 {
		spare = min(spare, limit)
	}
	if spare < directReadMin {
		return 0
	}
	return max(framingLen(fr.lastChunk, fr.phase == phaseDataEnd)-(s.w-s.r), 0)
}

// framingLen is the length of the framing before a chunk of the given size: its size line, after the CRLF that
// ends the previous chunk's data when dataEnd.
func framingLen(size int64, dataEnd bool) int {
	n := 2
	for v := size; v > 0; v >>= 4 {
		n++
	}
	if dataEnd {
		n += 2
	}
	return n
}

// countBody enforces the body size limit.
func (s *Socket) countBody(n int64) error {
	s.body.total += n
	if s.cfg.maxBody > 0 && s.body.total > s.cfg.maxBody {
		e := parseErr(replyBodyTooLarge, "body larger than %d bytes", s.cfg.maxBody)
		e.kind = ErrBodyTooLarge
		return e
	}
	return nil
}

// advance accounts for n body bytes consumed.
func (s *Socket) advance(n int64) {
	fr := &s.body
	switch fr.kind {
	case bodyLength:
		fr.remaining -= n
		if fr.remaining == 0 {
			fr.done = true
		}
	case bodyChunked:
		fr.remaining -= n
		if fr.remaining == 0 {
			fr.phase = phaseDataEnd
		}
	}
}

// chunkSizeLine parses a buffered chunk-size line (RFC 9112 section 7.1): hex size, optional extensions (ignored),
// CRLF. It reports false when the line is not complete yet.
func (s *Socket) chunkSizeLine() (bool, error) {
	data := s.buf[s.r:s.w]
	i := indexLF(data)
	if i < 0 {
		if len(data) > s.cfg.maxChunkLine+1 {
			e := parseErr(replyChunkLine, "chunk size line longer than %d bytes", s.cfg.maxChunkLine)
			e.kind = ErrBufferExhausted
			return false, e
		}
		return false, nil
	}
	if i > s.cfg.maxChunkLine+1 {
		e := parseErr(replyChunkLine, "chunk size line longer than %d bytes", s.cfg.maxChunkLine)
		e.kind = ErrBufferExhausted
		return false, e
	}
	line := data[:i]
	if len(line) == 0 || line[len(line)-1] != '\r' {
		return false, parseErr(replyInvalidData, "chunk size line without CRLF (after %d body bytes)", s.body.total)
	}
	line = line[:len(line)-1]
	var size int64
	j := 0
	for ; j < len(line); j++ {
		d := unhex(line[j])
		if d < 0 {
			break
		}
		if size > (1<<63-1)>>4 {
			return false, parseErr(replyChunkSize, "chunk size %q too large", line[:min(len(line), 40)])
		}
		size = size<<4 | int64(d)
	}
	if j == 0 {
		return false, parseErr(replyInvalidData, "chunk size line %q: no hex size", line[:min(len(line), 40)])
	}
	if why := checkChunkExt(line[j:]); why != "" {
		return false, parseErr(replyInvalidData, "chunk size line %q: %s", line[:min(len(line), 40)], why)
	}
	s.r += i + 1
	s.body.lastChunk = size
	if size == 0 {
		s.body.phase = phaseTrailers
		s.tscan = headScan{trailer: true}
	} else {
		s.body.phase = phaseData
		s.body.remaining = size
	}
	return true, nil
}

// checkChunkExt checks the chunk extensions after a chunk size (RFC 9112 section 7.1.1), which the socket then
// ignores: each is ";" name, optionally "=" value, where the name is a token and the value a token or a
// quoted-string. Whitespace is refused even where the grammar's BWS would allow it: no sender needs it, and
// parsers that disagree about it disagree about where a chunk starts. It returns why ext is invalid, or "".
func checkChunkExt(ext []byte) string {
	for len(ext) > 0 {
		if ext[0] != ';' {
			return fmt.Sprintf("%q after the size where an extension (;name) or CRLF belongs", ext[0])
		}
		ext = ext[1:]
		n := tokenLen(ext)
		if n == 0 {
			return "extension without a name"
		}
		ext = ext[n:]
		if len(ext) == 0 || ext[0] != '=' {
			continue
		}
		ext = ext[1:]
		if len(ext) > 0 && ext[0] == '"' {
			n = quotedLen(ext)
		} else {
			n = tokenLen(ext)
		}
		if n == 0 {
			return "extension value neither a token nor a quoted-string"
		}
		ext = ext[n:]
	}
	return ""
}

// tokenLen is the length of the token at the start of b.
func tokenLen(b []byte) int {
	n := 0
	for n < len(b) && isTchar(b[n]) {
		n++
	}
	return n
}

// quotedLen is the length of the quoted-string (RFC 9110 section 5.6.4) at the start of b, or 0 if there is none.
func quotedLen(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i == len(b) || b[i] < ' ' && b[i] != '\t' || b[i] == 0x7f {
				return 0
			}
		case c < ' ' && c != '\t' || c == 0x7f:
			return 0
		}
	}
	return 0
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// drain discards the rest of a request body the server did not read, up to the discard limit.
func (s *Socket) drain() error {
	var n int64
	for !s.body.done {
		k, err := s.pump(nil, nil, true, 0)
		if err != nil {
			return err
		}
		n += int64(k)
		if n > s.cfg.discardLimit {
			return ErrUnreadBody
		}
	}
	return nil
}
