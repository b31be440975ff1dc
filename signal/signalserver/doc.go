// Package signalserver is the signalling server of p2phttp: the server side
// of the protocol in package signal, which peers use to meet, and a STUN
// responder that tells them their public UDP address (on two ports, with
// what RFC 5780 NAT behaviour tests need: ServeSTUNPair).
//
// With Config.RelayURLs and RelaySecret it also hands every peer credentials
// of its own for the deployment's TURN relay (package signal/relay, which
// the p2phttp signal command runs beside it), in the usual TURN REST form
// that every relay sharing the secret accepts. A guest renews its credentials
// (signal.RelayPath) with a token bound to its TURN user, checked against
// the same secret, so renewals need no record and any instance answers them.
//
// The server is a blind mailbox. A host claims a nameplate (the number at
// the front of a code) and long-polls for guests; each guest that asks for
// the nameplate gets a meeting of its own with the host, through which the
// two exchange a few small opaque messages. The server never sees the secret
// words, a key or an address.
//
// State lives in a Store: a MemoryStore in the process by default, or a
// RedisStore shared by any number of servers, so that peers reaching
// different servers meet and a server that dies loses nothing. Every limit
// is a field of Config. Parked long-polls are hijacked from net/http: each
// is one goroutine blocked in a read of its idle connection (which returns
// the moment the client hangs up), some kilobytes in all; bench/signalload
// measures them.
//
// A program that only meets peers imports package signal and none of this
// package's dependencies (Prometheus, Redis, rate limiting).
package signalserver
