// Package symsock is a symmetric HTTP/1.1 socket over any net.Conn: one connection that is neither client nor
// server until its first action.
//
// The first ReadRequest makes a Socket the server; the first WriteRequest, WriteRequestMetadata or ReadResponse
// makes it the client. It is a Go port of Emilua's http.socket (Boost.Http's socket concept): explicit read and
// write state machines (see ReadState and WriteState), bodies appended to the message by reads, chunked streaming
// with trailers, pipelining, keep-alive and HTTP/1.0 peers. It exists for peer-to-peer links, where either end of
// one stream may be the one that serves.
//
// Parsing follows RFC 9112 strictly (ambiguous framing is rejected), every limit is a Config field, a server answers
// malformed requests with 400 (or 431, 414, 413) and closes the connection, and outgoing framing is always right
// (no body for HEAD, 1xx, 204, 304 or a 2xx to CONNECT). One goroutine may read while another writes. After a
// 101 Switching Protocols or a CONNECT tunnel, Hijack hands the stream over (WebSockets).
//
// A server loop and the client that talks to it. ReadRequest and ReadResponse return once the head is read; the
// body follows through BodyReader (or ReadSome), so read it whole before the next message:
//
//	// server
//	s := symsock.New(conn)
//	for {
//		var req symsock.Request
//		if err := s.ReadRequest(&req); err != nil {
//			return err // io.EOF: the peer closed between requests
//		}
//		body, err := io.ReadAll(s.BodyReader(&req))
//		if err != nil {
//			return err
//		}
//		res := symsock.Response{Status: 200, Body: fmt.Appendf(nil, "got %d bytes\n", len(body))}
//		if err := s.WriteResponse(&res); err != nil || !s.IsOpen() {
//			return err
//		}
//	}
//
//	// client
//	c := symsock.New(conn)
//	req := symsock.Request{Method: "POST", Target: "/", Header: http.Header{"Host": {"peer"}}, Body: data}
//	if err := c.WriteRequest(&req); err != nil {
//		return err
//	}
//	var res symsock.Response
//	if err := c.ReadResponse(&res); err != nil {
//		return err
//	}
//	body, err := io.ReadAll(c.BodyReader(&res))
//
// With ReadSome instead of BodyReader, note where each side's read ends: a server's read state ends in
// ReadFinished (it must answer before the next ReadRequest), a client's returns to ReadEmpty.
//
// Package symhttp (below this one) puts net/http on top: symhttp.Serve answers an http.Handler on a Socket,
// symhttp.NewTransport is an http.Client transport that runs concurrent requests, each on a stream of its own, and
// symhttp.NewRoundTripper runs requests one at a time on a single Socket.
package symsock
