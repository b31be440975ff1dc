// Package signal lets two peers that share a short room code meet: it holds the
// signalling protocol (an HTTP/JSON long-poll API under /v1/), its server (with
// the STUN responder that tells peers their public UDP address) and its client.
//
// The code never leaves the peers: the client derives from it, with a
// deliberately slow KDF, the room ID it sends to the server, a key that MACs
// each offer (so a peer detects a server that tampers with candidates) and the
// session key the peers use to authenticate punch packets. See Join and Server.
package signal
