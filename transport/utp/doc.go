// Package utp is p2phttp's transport: uTP made fit for hole-punched paths across the internet, sealed end to end,
// on one UDP socket per Transport shared by any number of peers.
//
// A Transport owns the socket and sorts what arrives by its first bytes: STUN responses to DiscoverSTUN (other STUN
// messages and TURN ChannelData from a relay's server to that relay's TURN client), sealed datagrams (first byte
// 0xD8, then the receiving path's ID) to their path, anything else dropped and counted (Stats).
//
// Connect builds a Path to one peer from its candidate addresses and the 32-byte session secret the meeting
// produced (Peer.Key). Every datagram between the peers, punches, probes, control packets and every uTP packet, is
// sealed with ChaCha20-Poly1305 under a per-direction key derived by HKDF from that secret, with an explicit 64-bit
// counter and a sliding replay window. A datagram that does not open, or replays one that did, is dropped and
// counted before any uTP code sees it: forged data, spoofed resets and strangers' SYNs die there, and a replayed
// punch is not answered. The keys live in the Path only.
//
// Punching sends sealed punches to every candidate until each side has had a reply to its own punch and knows the
// other has too. The path then carries datagrams on its route (a punched candidate pair); an authenticated datagram
// from a new address of the peer (its NAT rebound the mapping) moves the path there without breaking a stream. The
// uTP engine sees only "the peer", never an address.
//
// AllocateRelay makes a TURN allocation (pion/turn's client, over the Transport's own socket or, where UDP is
// blocked, over TCP) whose relayed address is one more candidate to offer peers; every path also punches through it.
// A path starts on the first route that answered, relay or direct, keeps punching, moves to a better route as soon
// as one answers (host pairs over reflexive ones over relays), and falls back on the relay when the direct route
// stops answering its probes. Path.Route and Path.RouteChanged say which route carries the path.
//
// One side, Peer.Dialer, dials every uTP connection; the other asks it to with a control packet, so uTP's
// simultaneous open never happens. Each connection carries a framed stream with its own flow control, keepalives and
// a graceful close that does not rely on uTP's FIN.
//
// The path probes the peer (every Config.ProbeInterval while streams write, every Config.KeepaliveInterval when
// idle); the echoes keep the NAT mapping open, detect a dead path (Config.DeadPathTimeout, then streams fail with
// ErrPathDead) and feed a delay-based congestion controller that paces every stream on the path.
package utp
