// Package symsock is a symmetric HTTP/1.1 socket over any net.Conn: one connection that is neither client nor
// server until its first action.
//
// The first ReadRequest makes a Socket the server; the first WriteRequest, WriteRequestMetadata or ReadResponse
// makes it the client. It is a Go port of Emilua's http.socket (Boost.Http's socket concept): explicit read and
// write state machines (see ReadState and WriteState), bodies appended to the message by reads, chunked streaming
// with trailers, pipelining, keep-alive and HTTP/1.0 peers. It exists for peer-to-peer links, where either end of
// one stream may be the one that serves.
//
// Parsing follows RFC 9112 strictly (ambiguous framing is rejected), every limit is an Option, a server answers
// malformed requests with 400 (or 431, 414, 413) and closes the connection, and outgoing framing is always right
// (no body for HEAD, 1xx, 204, 304 or a 2xx to CONNECT). One goroutine may read while another writes.
//
// A minimal server loop:
//
//	s := symsock.New(conn)
//	var req symsock.Request
//	for {
//		if err := s.ReadRequest(&req); err != nil {
//			return err // io.EOF: the peer closed between requests
//		}
//		for s.ReadState() != symsock.ReadFinished {
//			if err := s.ReadSome(&req); err != nil {
//				return err
//			}
//		}
//		res := symsock.Response{Status: 200, Body: []byte("hello\n")}
//		if err := s.WriteResponse(&res); err != nil || !s.IsOpen() {
//			return err
//		}
//	}
//
// Serve and NewRoundTripper adapt a Socket to net/http's http.Handler and http.RoundTripper.
package symsock
