package utp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"net/netip"
)

// Control packets share the UDP socket with STUN and uTP. Layout (big endian):
//
//	0      1 magic 0xD7: uTP needs version nibble 1 (and type <= 4), STUN needs the top two bits 00; 0xD7 is neither
//	1      1 version, 1
//	2      1 kind (punch, punch reply, probe, probe echo, open request, bye)
//	3      1 flags (confirmed, nominated, done, dialler)
//	4      8 sender instance: random per Connect, so packets of an earlier session with the same key never count
//	12     8 counter: strictly increasing per sender instance; the receiver keeps a sliding replay window
//	20     n body (kind-specific, see below)
//	20+n  16 MAC: HMAC-SHA256(HMAC-SHA256(key, "p2phttp/utp control v1"), bytes 0..20+n), first 16 bytes
//
// Bodies: punch reply and probe echo carry the instance and counter of the packet they answer (16 bytes), so a reply
// proves the peer holds the key and saw our fresh packet; a punch reply adds the address the punch came from (16-byte
// IPv6 or IPv4-mapped address, 2-byte port), which tells the puncher which of its candidates worked; open request
// carries an 8-byte request ID; the rest are empty.
const (
	ctrlMagic   = 0xD7
	ctrlVersion = 1
	ctrlHeader  = 20
	macSize     = 16
	ctrlMaxBody = 34
)

type ctrlKind byte

const (
	kindPunch ctrlKind = iota + 1
	kindPunchReply
	kindProbe
	kindProbeEcho
	kindOpenRequest
	kindBye
)

const (
	flagConfirmed = 1 << iota // the sender has had an authenticated reply to its own punch
	flagNominated             // the sender is the dialler and chose the address this packet was sent to
	flagDone                  // the sender's Connect has finished
	flagDialer                // the sender is the dialler (Peer.Dialer); both or neither is a misconfiguration
)

type ctrlPacket struct {
	kind     ctrlKind
	flags    byte
	instance uint64
	counter  uint64
	body     []byte
}

var errNotControl = errors.New("not a control packet")

// isControl reports whether b starts like one of our control packets.
func isControl(b []byte) bool { return len(b) > 0 && b[0] == ctrlMagic }

// sessionKeys are the keys derived from a Peer.Key: one per use, so a MAC made for one purpose is never valid for
// another.
type sessionKeys struct {
	control []byte
	stream  []byte
}

func deriveKeys(key []byte) sessionKeys {
	d := func(label string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	return sessionKeys{control: d("p2phttp/utp control v1"), stream: d("p2phttp/utp stream v1")}
}

// macer computes truncated HMACs; not safe for concurrent use.
type macer struct{ h hash.Hash }

func newMacer(key []byte) *macer { return &macer{h: hmac.New(sha256.New, key)} }

func (m *macer) sum(dst []byte, parts ...[]byte) []byte {
	m.h.Reset()
	for _, p := range parts {
		m.h.Write(p)
	}
	var full [sha256.Size]byte
	return append(dst, m.h.Sum(full[:0])[:macSize]...)
}

// appendCtrl appends the sealed packet p to dst.
func (m *macer) appendCtrl(dst []byte, p ctrlPacket) []byte {
	start := len(dst)
	dst = append(dst, ctrlMagic, ctrlVersion, byte(p.kind), p.flags)
	dst = binary.BigEndian.AppendUint64(dst, p.instance)
	dst = binary.BigEndian.AppendUint64(dst, p.counter)
	dst = append(dst, p.body...)
	return m.sum(dst, dst[start:])
}

// parseCtrl checks the framing of b, without authenticating it.
func parseCtrl(b []byte) (ctrlPacket, error) {
	if len(b) < ctrlHeader+macSize || len(b) > ctrlHeader+ctrlMaxBody+macSize || b[0] != ctrlMagic || b[1] != ctrlVersion {
		return ctrlPacket{}, errNotControl
	}
	p := ctrlPacket{
		kind:     ctrlKind(b[2]),
		flags:    b[3],
		instance: binary.BigEndian.Uint64(b[4:12]),
		counter:  binary.BigEndian.Uint64(b[12:20]),
		body:     b[ctrlHeader : len(b)-macSize],
	}
	want := map[ctrlKind]int{kindPunch: 0, kindPunchReply: 34, kindProbe: 0, kindProbeEcho: 16, kindOpenRequest: 8, kindBye: 0}
	if n, ok := want[p.kind]; !ok || n != len(p.body) {
		return ctrlPacket{}, errNotControl
	}
	return p, nil
}

// verify reports whether b (a parsed control packet) carries a valid MAC.
func (m *macer) verify(b []byte) bool {
	var buf [macSize]byte
	return hmac.Equal(m.sum(buf[:0], b[:len(b)-macSize]), b[len(b)-macSize:])
}

// echoBody is the body of a reply: the instance and counter of the packet answered.
func echoBody(instance, counter uint64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), instance)
	return binary.BigEndian.AppendUint64(b, counter)
}

// punchReplyBody is echoBody plus the address the punch was seen from.
func punchReplyBody(instance, counter uint64, from netip.AddrPort) []byte {
	ip := from.Addr().As16()
	b := append(echoBody(instance, counter), ip[:]...)
	return binary.BigEndian.AppendUint16(b, from.Port())
}

func parseObserved(body []byte) netip.AddrPort {
	ip := netip.AddrFrom16([16]byte(body[16:32])).Unmap()
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[32:34]))
}

func parseEcho(body []byte) (instance, counter uint64) {
	return binary.BigEndian.Uint64(body[:8]), binary.BigEndian.Uint64(body[8:16])
}

// replayWindow accepts each counter at most once, and none older than the newest minus its width (RFC 6479 style).
type replayWindow struct {
	top  uint64
	bits [replayWords]uint64
}

const (
	replayWords = 32
	replayWidth = replayWords * 64
)

// accept reports whether counter is fresh and records it.
func (w *replayWindow) accept(counter uint64) bool {
	if counter == 0 {
		return false
	}
	if counter > w.top {
		shift := counter - w.top
		if shift >= replayWidth {
			w.bits = [replayWords]uint64{}
		} else {
			for i := w.top + 1; i <= counter; i++ {
				w.bits[(i/64)%replayWords] &^= 1 << (i % 64)
			}
		}
		w.top = counter
	} else if w.top-counter >= replayWidth {
		return false
	}
	word, bit := (counter/64)%replayWords, uint64(1)<<(counter%64)
	if w.bits[word]&bit != 0 {
		return false
	}
	w.bits[word] |= bit
	return true
}
