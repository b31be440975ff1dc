package symhttp

import "time"

// Default settings of a Server.
const (
	// DefaultResponseBufferSize is how many response body bytes a Server buffers before it starts streaming: a
	// handler that writes no more than this gets a Content-Length response, a larger one a chunked response.
	DefaultResponseBufferSize = 4 << 10
	// DefaultMaxHTTP10Buffer is how much of a response of unknown length a Server buffers for an HTTP/1.0 client,
	// which cannot receive chunked responses.
	DefaultMaxHTTP10Buffer = 16 << 20
)

// Default settings of a RoundTripper.
const (
	// DefaultExpectContinueTimeout is how long a request with "Expect: 100-continue" waits for the server's
	// answer before sending its body anyway.
	DefaultExpectContinueTimeout = 1 * time.Second
	// DefaultMaxDrainBytes is how much of an unread response body Close reads to keep the socket usable.
	DefaultMaxDrainBytes = 256 << 10
	// DefaultMaxBufferedBody bounds a request body of unknown length buffered for an HTTP/1.0-locked socket.
	DefaultMaxBufferedBody = 16 << 20
)

// Default settings of the http.Transport made by NewTransport.
const (
	// DefaultMaxIdleStreams is how many idle streams the transport keeps open for reuse.
	DefaultMaxIdleStreams = 16
	// DefaultIdleStreamTimeout is how long an idle stream is kept before it is closed.
	DefaultIdleStreamTimeout = 90 * time.Second
)
