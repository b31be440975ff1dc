// Package symhttp puts net/http on both ends of a peer-to-peer stream: Serve answers the requests that arrive on a
// symsock.Socket with any http.Handler, NewTransport is an *http.Transport whose connections are streams to the
// peer (an ordinary *http.Client, concurrent requests, idle streams reused), and RoundTripper sends requests one at
// a time over a single symsock.Socket.
//
// The serving peer answers every stream with Serve; the fetching peer needs one line for its client:
//
//	go symhttp.Serve(symsock.New(stream), handler)                            // each stream the peer opens
//	client := &http.Client{Transport: symhttp.NewTransport(sess.OpenStream)} // sess: a *rendezvous.Session
//
// Handlers get what net/http gives them: streaming with http.Flusher, trailers, 100 Continue on the first body
// read, 1xx such as 103 Early Hints, http.Hijacker after a 101 (WebSocket libraries and httputil.ReverseProxy
// work), a context that ends when the client goes away. The package uses only the exported API of symsock.
package symhttp
