// Package rendezvoustest runs a signalling server with its STUN responder on loopback, for tests, demos and
// benchmarks of code that meets peers with package rendezvous, in the manner of net/http/httptest.
package rendezvoustest
