// Package utp is p2phttp's transport: uTP (github.com/anacrolix/utp) made fit for hole-punched paths across the
// internet, on one UDP socket per peer.
//
// A Transport owns the socket and sorts what arrives: STUN responses (by the magic cookie) to DiscoverSTUN, our own
// control packets (first byte 0xD7, which no uTP or STUN header can start with) to the path whose session key
// authenticates them, and everything else to the uTP library, but only when it comes from the peer of an
// established path: a stranger's SYN never reaches the library.
//
// Connect punches a path to a peer from its candidate addresses and a 32-byte session key shared out of band
// (package signal): HMAC-authenticated punches go to every candidate until each side has had a reply to its own
// punch and knows the other has too. One side, Peer.Dialer, dials every uTP connection; the other asks it to with a
// control packet, so the library's simultaneous open never happens. Each connection starts with an authenticated
// handshake, then carries a framed stream with its own flow control, keepalives and a graceful close that does not
// rely on the library's FIN.
//
// The path probes the peer (every Config.ProbeInterval while streams write, every Config.KeepaliveInterval when
// idle); the echoes keep the NAT mapping open, detect a dead path (Config.DeadPathTimeout, then streams fail with
// ErrPathDead) and feed a delay-based congestion controller that paces every stream on the path.
package utp
