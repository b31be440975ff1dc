package utp

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// The plaintext of a sealed datagram starts with its kind. An engine datagram (a uTP packet) follows its kind byte
// as is; a control packet has a flags byte and a kind-specific body:
//
//	punch        8: the sender's instance (random per Connect), so a peer that reads its own role's keys back can
//	                tell a misconfigured peer (both or neither the dialler) from its own datagram reflected
//	punch reply 26: the counter of the punch answered (8), and the address it came from (16-byte IPv6 or
//	                IPv4-mapped address, 2-byte port), which tells the puncher which of its candidates worked
//	probe        0
//	probe echo   8: the counter of the probe answered
//	bye          0
//	relay move  36: a relayed address of the sender's that peers may now reach it on (18: 16-byte IPv6 or
//	                IPv4-mapped address, 2-byte port) and the one it replaces, which it is retiring (18)
//	move ack    18: the new relayed address of the relay move acknowledged
//
// A peer that does not know a kind drops the packet as malformed (parseCtrl), so a kind can be added without breaking
// older peers; the sender learns whether the peer knows it from the peer's flags (flagRelayMoves).
//
// Replies name the sealed counter of what they answer: counters are unique per direction, so a reply proves the
// peer opened that very datagram.
type ctrlKind byte

const (
	kindDatagram ctrlKind = iota // an engine datagram, not a control packet
	kindPunch
	kindPunchReply
	kindProbe
	kindProbeEcho
	kindBye
	kindRelayMove
	kindRelayMoveAck
)

const (
	flagConfirmed  = 1 << iota // the sender has had an authenticated reply to its own punch
	flagNominated              // the sender is the dialler and chose the address this packet was sent to
	flagDone                   // the sender's Connect has finished
	flagBackup                 // sent on a route that does not carry the sender's path now (a relay keepalive)
	flagRelayMoves             // the sender announces its new relayed addresses (kindRelayMove) before it retires old ones
)

// ctrlMaxBody is the longest control body (a relay move).
const ctrlMaxBody = 36

type ctrlPacket struct {
	kind  ctrlKind
	flags byte
	body  []byte
}

var errNotControl = errors.New("not a control packet")

// parseCtrl checks the framing of the plaintext of a control packet.
func parseCtrl(b []byte) (ctrlPacket, error) {
	if len(b) < 2 {
		return ctrlPacket{}, errNotControl
	}
	c := ctrlPacket{kind: ctrlKind(b[0]), flags: b[1], body: b[2:]}
	want := -1
	switch c.kind {
	case kindPunch, kindProbeEcho:
		want = 8
	case kindPunchReply:
		want = 26
	case kindRelayMove:
		want = 2 * addrLen
	case kindRelayMoveAck:
		want = addrLen
	case kindProbe, kindBye:
		want = 0
	}
	if want != len(c.body) {
		return ctrlPacket{}, errNotControl
	}
	return c, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// addrLen is the length of an address in a control body: a 16-byte IPv6 or IPv4-mapped address and a 2-byte port.
const addrLen = 18

func appendAddr(b []byte, a netip.AddrPort) []byte {
	ip := a.Addr().As16()
	return binary.BigEndian.AppendUint16(append(b, ip[:]...), a.Port())
}

func parseAddr(b []byte) netip.AddrPort {
	ip := netip.AddrFrom16([16]byte(b[:16])).Unmap()
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[16:addrLen]))
}

// punchReplyBody is the counter answered plus the address the punch was seen from.
func punchReplyBody(counter uint64, from netip.AddrPort) []byte {
	return appendAddr(u64(counter), from)
}

func parseObserved(body []byte) netip.AddrPort { return parseAddr(body[8:]) }

// relayMoveBody announces the relayed address moved to, replacing old.
func relayMoveBody(moved, old netip.AddrPort) []byte {
	return appendAddr(appendAddr(make([]byte, 0, 2*addrLen), moved), old)
}

// parseRelayMove returns the addresses of a relay move's body.
func parseRelayMove(body []byte) (moved, old netip.AddrPort) {
	return parseAddr(body), parseAddr(body[addrLen:])
}

// parseEcho returns the counter a reply answers.
func parseEcho(body []byte) uint64 { return binary.BigEndian.Uint64(body[:8]) }
