// Package examples holds small runnable programs that embed p2phttp, one per directory:
//
//   - fetch: fetch paths from a peer concurrently with an *http.Client (symhttp.NewTransport over the session's
//     streams);
//   - serve: serve an http.Handler to a peer;
//   - symmetric: one program both peers run, where whoever writes the first request becomes the client.
//
// Each program's header comment says how to run it. The tests in this directory build them and run them against a
// signalling server on loopback.
package examples
