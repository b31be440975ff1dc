// Package utp is p2phttp's transport: uTP made fit for hole-punched paths across the internet, sealed end to end,
// on one UDP socket per Transport shared by any number of peers.
//
// A Transport owns the socket and sorts what arrives by its first bytes: STUN responses to DiscoverSTUN (other STUN
// messages and TURN ChannelData from a relay's server to that relay's TURN client), sealed datagrams (first byte
// 0xD8, then the receiving path's ID) to their path, anything else dropped and counted (Stats).
//
// Connect builds a Path to one peer from its candidate addresses and the 32-byte session secret the meeting
// produced (Peer.Key). Every datagram between the peers, punches, probes, control packets and every uTP packet, is
// sealed with an AEAD (Peer.Cipher: ChaCha20-Poly1305, or AES-256-GCM where both peers' CPUs have AES-GCM
// instructions; Ciphers says what this machine offers) under a per-direction key derived by HKDF from that secret,
// with an explicit 64-bit counter and a sliding replay window. A datagram that does not open, or replays one that did, is dropped and
// counted before any uTP code sees it: forged data, spoofed resets and strangers' SYNs die there, and a replayed
// punch is not answered. The keys live in the Path only.
//
// Punching sends sealed punches to every candidate until each side has had a reply to its own punch and knows the
// other has too. The path then carries datagrams on its route (a punched candidate pair); an authenticated datagram
// from a new address of the peer (its NAT rebound the mapping) moves the path there without breaking a stream. The
// uTP engine sees only "the peer", never an address.
//
// A NAT that maps every destination to a new public port (symmetric; DiscoverNAT tells it from STUN's two server
// addresses, and each peer names its mapping on its candidates) gives the peer no address to punch. Against a peer
// whose NAT keeps one port, the hard side punches from many extra sockets (Config.HardNATSockets), each making a
// mapping of its own, while the other side sends paced sealed probes to ports of the hard side's public address,
// predicted ones first where the NAT allocates in sequence, then random ones (Config.HardNATProbes,
// HardNATProbeInterval): by the birthday paradox a probe soon lands on one of the mappings, and the extra socket it
// reaches carries the route. The other extra sockets close once a direct route carries the path, or after
// Config.HardNATTimeout; a path back on the relay punches again. Two hard sides cannot meet this way and stay on a
// relay.
//
// AllocateRelay makes a TURN allocation (pion/turn's client, over the Transport's own socket or, where UDP is
// blocked, over TCP) whose relayed address is one more candidate to offer peers; every path also punches through it.
// A path starts on the first route that answered, relay or direct, keeps punching, moves to a better route as soon
// as one answers (host pairs over reflexive ones over relays), and falls back on the relay when the direct route
// stops answering its probes. Path.Route and Path.RouteChanged say which route carries the path.
//
// Each path runs its own uTP engine (BEP 29, in internal/engine) over the sealed datagrams: every stream is one of
// its connections, and either side opens one (Path.OpenStream, the peer's Path.AcceptStream; by convention the
// Peer.Dialer side opens the first). A stream is a net.Conn with deadlines and CloseWrite; it has selective ACKs,
// time-based loss detection with a tail loss probe, a retransmission timer that backs off but never gives up, path
// MTU discovery (from 1,200-byte datagrams up to what a TURN relay over IPv6 still carries), a receive window its
// reader frees (Config.StreamWindow) and a graceful Close that delivers in the background (Config.CloseTimeout);
// Path.Close waits for streams already closed to deliver. Each stream has its own paced congestion controller
// (Config.CongestionControl): BBR by default, which neither random loss nor a busy CPU's scheduling delay slows;
// CUBIC; or LEDBAT as a background mode that yields to other traffic.
//
// The path probes the peer (every Config.BusyProbeInterval while streams send and the peer's datagrams come,
// every Config.ProbeInterval when they stop, every Config.KeepaliveInterval when idle); the echoes keep the NAT
// mapping open, measure the path's RTT (Path.RTT) and detect a dead path (Config.DeadPathTimeout, then streams
// fail with ErrPathDead).
package utp
