package symhttp

import (
	"context"
	"net"
	"net/http"
)

// NewTransport returns an *http.Transport that runs each request on a stream opened with dial, for a peer that
// serves every stream with Serve (as `p2phttp serve` does). Use it as the Transport of an http.Client:
//
//	client := &http.Client{Transport: symsock.NewTransport(sess.OpenStream)} // sess: a *rendezvous.Session
//	resp, err := client.Get("http://peer/hello")
//
// The host in the URL only names the connection pool: every request goes to the peer behind dial. Requests run
// concurrently, one stream per request in flight; a stream whose exchange ended cleanly goes back to a pool of
// idle streams for the next request (at most DefaultMaxIdleStreams, each closed after DefaultIdleStreamTimeout of
// idleness), and a failed exchange closes only its own stream. Upgrades work as with any http.Transport: a 101
// response's Body is the stream, ready for a WebSocket library.
//
// It is net/http's own client, not a Socket: connection pooling, cancellation, Expect: 100-continue, redirects,
// and transparent gzip are what net/http does well, and the peer's Serve speaks plain HTTP/1.1 on each stream. The
// result is an ordinary *http.Transport: tune its fields (MaxIdleConnsPerHost, IdleConnTimeout, MaxConnsPerHost to
// cap the streams in flight, ResponseHeaderTimeout) before first use. URLs must be http://: the stream is already
// sealed end to end, and an https:// request fails instead of running TLS inside it.
func NewTransport(dial func(ctx context.Context) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errNoTLS
		},
		Proxy:                 nil, // the peer is not reached through HTTP_PROXY
		MaxIdleConns:          DefaultMaxIdleStreams,
		MaxIdleConnsPerHost:   DefaultMaxIdleStreams,
		IdleConnTimeout:       DefaultIdleStreamTimeout,
		ExpectContinueTimeout: DefaultExpectContinueTimeout,
	}
}
