package symhttp

import "errors"

// Errors of Server and RoundTripper; match them with errors.Is. Errors of the Socket underneath (symsock.ErrParsing,
// symsock.ErrHijacked, ...) pass through wrapped.
var (
	// ErrHandlerPanic is returned (wrapped, with the panic value) by Serve when the handler panicked; the
	// response was aborted and the connection closed. A panic with http.ErrAbortHandler is reported as that
	// error instead.
	ErrHandlerPanic = errors.New("symhttp: handler panic")
	// ErrResponseTooLarge: a response of unknown length to an HTTP/1.0 client outgrew Server.MaxHTTP10Buffer.
	ErrResponseTooLarge = errors.New("symhttp: response too large to buffer")
	// ErrShortResponse: the handler declared a Content-Length and wrote fewer bytes; the connection is closed so
	// the client sees a truncated message rather than a wrong one.
	ErrShortResponse = errors.New("symhttp: response shorter than its Content-Length")
	// ErrBodyLength: a request body's length differs from its ContentLength. The connection is closed, since
	// the peer was promised a different message.
	ErrBodyLength = errors.New("symhttp: request body length differs from ContentLength")
	// ErrRequestTooLarge: a request body of unknown length to an HTTP/1.0-locked socket outgrew
	// RoundTripper.MaxBufferedBody.
	ErrRequestTooLarge = errors.New("symhttp: request body too large to buffer")
)

// errBodyWithheld: a Content-Length body held back for 100 Continue was never sent, so the connection cannot carry
// another request once the response is read.
var errBodyWithheld = errors.New("symhttp: request body withheld after a final response")

// errNoTLS: an https:// URL given to a NewTransport client.
var errNoTLS = errors.New("symhttp: use http:// URLs with a peer transport: the stream is already encrypted")
