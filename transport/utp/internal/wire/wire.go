// Package wire encodes and decodes uTP packets (BEP 29): the 20-byte version 1
// header and its extension chain, of which it understands the selective ACK and
// a padding extension used to probe the path MTU. Unknown extensions are
// skipped on decode, as BEP 29 asks, so other uTP stacks ignore the padding.
//
// Decoding never allocates: a decoded header's selective ACK aliases the
// packet it was read from.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Type is a packet's type, the high nibble of its first byte.
type Type uint8

// The packet types of BEP 29.
const (
	Data  Type = 0 // ST_DATA: carries payload, consumes a sequence number
	Fin   Type = 1 // ST_FIN: the sender's last sequence number; consumes one
	State Type = 2 // ST_STATE: an acknowledgement; consumes no sequence number
	Reset Type = 3 // ST_RESET: ends the connection at once
	Syn   Type = 4 // ST_SYN: opens a connection; consumes a sequence number
)

func (t Type) String() string {
	switch t {
	case Data:
		return "DATA"
	case Fin:
		return "FIN"
	case State:
		return "STATE"
	case Reset:
		return "RESET"
	case Syn:
		return "SYN"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Version is the only uTP version there is.
const Version = 1

// HeaderLen is the size of the fixed header, before any extension.
const HeaderLen = 20

// Extension types.
const (
	ExtNone         = 0
	ExtSelectiveACK = 1
	// ExtPadding carries zeros only. It lets a packet grow to the size of a
	// path MTU probe without adding payload; stacks that do not know it skip it.
	ExtPadding = 0x70
	// ExtDuplicate carries the 2-byte sequence number of a packet that arrived
	// twice, so the sender can tell a needless retransmission (as TCP's
	// D-SACK does) and tolerate more reordering. Stacks that do not know it
	// skip it.
	ExtDuplicate = 0x71
)

// MaxSACKLen is the longest selective ACK bitmask an extension can carry (its
// length is one byte and must be a multiple of 4).
const MaxSACKLen = 252

// Errors Decode returns (wrapped with detail); errors.Is matches them.
var (
	ErrShort     = errors.New("utp: packet shorter than its header")
	ErrVersion   = errors.New("utp: not a version 1 packet")
	ErrType      = errors.New("utp: unknown packet type")
	ErrExtension = errors.New("utp: malformed extension")
)

// Header is a decoded packet header. Timestamps are microseconds on the
// sender's clock, modulo 2^32.
type Header struct {
	Type          Type
	ConnID        uint16
	Timestamp     uint32 // when the packet left, on the sender's clock
	TimestampDiff uint32 // the sender's receive time of the last packet it got, less that packet's Timestamp
	WndSize       uint32 // bytes the sender can still take into its receive buffer
	SeqNr         uint16
	AckNr         uint16
	// SACK is the selective ACK bitmask, or nil: bit i (bit i%8 of byte i/8)
	// says packet AckNr+2+i has arrived. Its length is a multiple of 4.
	SACK []byte
	// Duplicate, if HasDuplicate, is a sequence number that arrived twice.
	Duplicate    uint16
	HasDuplicate bool
	// Padding, on encode, is how many bytes of padding extensions to add
	// (0, or at least 2: each extension has a 2-byte head). Decode leaves it 0.
	Padding int
}

// Decode parses b into h and returns the payload that follows the header and
// its extensions. The payload and h.SACK alias b.
func (h *Header) Decode(b []byte) (payload []byte, err error) {
	if len(b) < HeaderLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	if v := b[0] & 0xf; v != Version {
		return nil, fmt.Errorf("%w: version %d", ErrVersion, v)
	}
	t := Type(b[0] >> 4)
	if t > Syn {
		return nil, fmt.Errorf("%w: %d", ErrType, uint8(t))
	}
	*h = Header{
		Type:          t,
		ConnID:        binary.BigEndian.Uint16(b[2:]),
		Timestamp:     binary.BigEndian.Uint32(b[4:]),
		TimestampDiff: binary.BigEndian.Uint32(b[8:]),
		WndSize:       binary.BigEndian.Uint32(b[12:]),
		SeqNr:         binary.BigEndian.Uint16(b[16:]),
		AckNr:         binary.BigEndian.Uint16(b[18:]),
	}
	next := b[1]
	rest := b[HeaderLen:]
	for next != ExtNone {
		if len(rest) < 2 {
			return nil, fmt.Errorf("%w: extension %d truncated", ErrExtension, next)
		}
		n := int(rest[1])
		if len(rest) < 2+n {
			return nil, fmt.Errorf("%w: extension %d claims %d bytes, %d left", ErrExtension, next, n, len(rest)-2)
		}
		if next == ExtSelectiveACK && h.SACK == nil {
			if n == 0 || n%4 != 0 {
				return nil, fmt.Errorf("%w: selective ACK of %d bytes is not a positive multiple of 4", ErrExtension, n)
			}
			h.SACK = rest[2 : 2+n : 2+n]
		}
		if next == ExtDuplicate && n == 2 {
			h.Duplicate, h.HasDuplicate = binary.BigEndian.Uint16(rest[2:]), true
		}
		next = rest[0]
		rest = rest[2+n:]
	}
	return rest, nil
}

// Len is the encoded size of h, extensions included.
func (h *Header) Len() int {
	n := HeaderLen + h.Padding
	if len(h.SACK) > 0 {
		n += 2 + len(h.SACK)
	}
	if h.HasDuplicate {
		n += 4
	}
	return n
}

// Append appends the encoding of h to b. It panics if h.SACK is not a multiple
// of 4 of at most MaxSACKLen bytes or h.Padding is 1 or negative: those are the
// caller's bugs, never the peer's.
func (h *Header) Append(b []byte) []byte {
	if len(h.SACK)%4 != 0 || len(h.SACK) > MaxSACKLen || h.Padding < 0 || h.Padding == 1 {
		panic(fmt.Sprintf("wire: bad header to encode: SACK %d bytes, padding %d", len(h.SACK), h.Padding))
	}
	// The chain: selective ACK, duplicate, padding, each if present.
	var chain [3]byte
	exts := chain[:0]
	if len(h.SACK) > 0 {
		exts = append(exts, ExtSelectiveACK)
	}
	if h.HasDuplicate {
		exts = append(exts, ExtDuplicate)
	}
	if h.Padding > 0 {
		exts = append(exts, ExtPadding)
	}
	exts = append(exts, ExtNone)
	b = append(b, byte(h.Type)<<4|Version, exts[0])
	b = binary.BigEndian.AppendUint16(b, h.ConnID)
	b = binary.BigEndian.AppendUint32(b, h.Timestamp)
	b = binary.BigEndian.AppendUint32(b, h.TimestampDiff)
	b = binary.BigEndian.AppendUint32(b, h.WndSize)
	b = binary.BigEndian.AppendUint16(b, h.SeqNr)
	b = binary.BigEndian.AppendUint16(b, h.AckNr)
	exts = exts[1:]
	if len(h.SACK) > 0 {
		b = append(b, exts[0], byte(len(h.SACK)))
		b = append(b, h.SACK...)
		exts = exts[1:]
	}
	if h.HasDuplicate {
		b = append(b, exts[0], 2)
		b = binary.BigEndian.AppendUint16(b, h.Duplicate)
	}
	for pad := h.Padding; pad > 0; {
		// Each extension carries at most 255 bytes; never leave a remainder
		// of 1, which could not hold an extension's head.
		n := min(pad-2, 255)
		if rem := pad - 2 - n; rem == 1 {
			n--
		}
		pad -= 2 + n
		next := byte(ExtNone)
		if pad > 0 {
			next = ExtPadding
		}
		b = append(b, next, byte(n))
		b = append(b, make([]byte, n)...)
	}
	return b
}

// SACKBit reports whether bit i of a selective ACK bitmask is set: whether
// packet AckNr+2+i has arrived.
func SACKBit(mask []byte, i int) bool {
	return i >= 0 && i/8 < len(mask) && mask[i/8]&(1<<(i%8)) != 0
}

// SetSACKBit sets bit i of mask, which must be long enough.
func SetSACKBit(mask []byte, i int) { mask[i/8] |= 1 << (i % 8) }

// SeqLess reports whether sequence number a comes before b, modulo 2^16.
func SeqLess(a, b uint16) bool { return int16(a-b) < 0 }
