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
)

const (
	flagConfirmed = 1 << iota // the sender has had an authenticated reply to its own punch
	flagNominated             // the sender is the dialler and chose the address this packet was sent to
	flagDone                  // the sender's Connect has finished
	flagBackup                // sent on a route that does not carry the sender's path now (a relay keepalive)
)

// ctrlMaxBody is the longest control body (a punch reply).
const ctrlMaxBody = 26

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
	case kindProbe, kindBye:
		want = 0
	}
	if want != len(c.body) {
		return ctrlPacket{}, errNotControl
	}
	return c, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// punchReplyBody is the counter answered plus the address the punch was seen from.
func punchReplyBody(counter uint64, from netip.AddrPort) []byte {
	ip := from.Addr().As16()
	b := append(u64(counter), ip[:]...)
	return binary.BigEndian.AppendUint16(b, from.Port())
}

func parseObserved(body []byte) netip.AddrPort {
	ip := netip.AddrFrom16([16]byte(body[8:24])).Unmap()
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[24:26]))
}

// parseEcho returns the counter a reply answers.
func parseEcho(body []byte) uint64 { return binary.BigEndian.Uint64(body[:8]) }
