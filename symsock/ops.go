package symsock

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
func (s *Socket) ReadRequest(req *Request) error { return s.readRequest(req) }

// ReadResponse reads the next response into res, making an undecided socket the client. Like ReadRequest it clears
// res and appends the buffered body; at the end of the response the read state is "empty" again. A 1xx response
// comes back bodiless and does not answer the oldest outstanding request: call ReadResponse again for the final
// one. Responses to HEAD, 1xx, 204, 304 and 2xx to CONNECT have no body. After an HTTP/1.0 or non-persistent
// response the connection is closed.
func (s *Socket) ReadResponse(res *Response) error { return s.readResponse(res) }

// ReadSome appends more body bytes (and, at the end, trailers) of the message being read to m, blocking until at
// least one body byte arrived or the message ended. m must be the *Request on a server and the *Response on a
// client (else ErrWrongDirection). At the end of the message the read state becomes "finished" on a server and
// "empty" on a client. When m.Body has spare capacity, large bodies are read straight into it.
func (s *Socket) ReadSome(m Message) error { return s.readSome(m) }

// WriteRequest writes req whole, making an undecided socket the client: the request line (HTTP/1.1, or HTTP/1.0
// when locked), "Content-Length" when the body is not empty, the headers sorted by name, and the body. The write
// state stays "empty", so requests may be pipelined. A Content-Length header that disagrees with the body or a
// Transfer-Encoding header is ErrInvalidMessage. No Host header is added.
func (s *Socket) WriteRequest(req *Request) error { return s.writeRequest(req) }

// WriteRequestMetadata writes the head of a streamed request ("Transfer-Encoding: chunked", or identity when req
// carries a Content-Length header) and moves the write state to "metadata_issued"; the body follows with Write and
// ends with WriteTrailers or WriteEndOfMessage. It fails with ErrNativeStreamUnsupported when locked to HTTP/1.0.
func (s *Socket) WriteRequestMetadata(req *Request) error { return s.writeRequestMetadata(req) }

// WriteResponse writes res whole as the answer to the request just read; the write state becomes "finished" and
// the read state "empty". It adds "Content-Length" (unless given, in which case it must match the body) and
// "Connection: close" when the exchange is not persistent, after which the connection is closed. Responses to HEAD
// carry the Content-Length but no body; 204, 304 and 2xx to CONNECT must have an empty body; 1xx status codes are
// rejected (use WriteResponseContinue). It fails with ErrWrongDirection unless the socket is a server and with
// ErrOutOfOrder unless the write state is "empty" or "continue_issued".
func (s *Socket) WriteResponse(res *Response) error { return s.writeResponse(res) }

// WriteResponseContinue writes "HTTP/1.1 100 Continue" to a request that asked for it (see ContinueRequired)
// whose body is not read yet; the write state becomes "continue_issued". Otherwise it writes nothing and fails
// with ErrWrongDirection (not a server) or ErrOutOfOrder.
func (s *Socket) WriteResponseContinue() error { return s.writeResponseContinue() }

// WriteResponseMetadata writes the head of a streamed response ("Transfer-Encoding: chunked", or identity when res
// carries a Content-Length header, or no body framing for HEAD, 204 and 304) and moves the write state to
// "metadata_issued"; the body follows with Write. A chunked response to an HTTP/1.0 request fails with
// ErrNativeStreamUnsupported and changes nothing: use WriteResponse.
func (s *Socket) WriteResponseMetadata(res *Response) error { return s.writeResponseMetadata(res) }

// Write sends m.Body as the next piece of the streamed message (a chunk, when chunked). An empty body writes
// nothing. It fails with ErrOutOfOrder unless the write state is "metadata_issued".
func (s *Socket) Write(m Message) error { return s.write(m) }

// WriteTrailers ends the streamed message with m.Trailer as trailer fields (chunked only; a Content-Length message
// accepts no trailers). A server's write state becomes "finished" (read state "empty"), a client's "empty".
func (s *Socket) WriteTrailers(m Message) error { return s.writeEnd(m) }

// WriteEndOfMessage ends the streamed message without trailers, like WriteTrailers.
func (s *Socket) WriteEndOfMessage() error { return s.writeEnd(nil) }
