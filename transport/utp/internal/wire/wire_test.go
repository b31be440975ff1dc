package wire

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A STATE packet as libutp and anacrolix/utp send it: a 4-byte selective ACK
// saying packets AckNr+2 and AckNr+10 arrived, then 3 payload bytes (which a
// STATE never has, but the codec does not care).
var sample = []byte{
	0x21, 0x01, 0x12, 0x34, // STATE v1, SACK follows, conn 0x1234
	0x00, 0x00, 0x00, 0x10, // timestamp 16
	0x00, 0x00, 0x00, 0x20, // timestamp difference 32
	0x00, 0x10, 0x00, 0x00, // window 1 MiB
	0xab, 0xcd, 0x00, 0x07, // seq 0xabcd, ack 7
	0x00, 0x04, 0x01, 0x01, 0x00, 0x00, // no more extensions, 4 bytes of SACK
	'x', 'y', 'z',
}

func TestDecodeSample(t *testing.T) {
	var h Header
	payload, err := h.Decode(sample)
	require.NoError(t, err)
	// The sample has no padding and no duplicate mark, so those fields stay zero.
	want := Header{Type: State, ConnID: 0x1234, Timestamp: 16, TimestampDiff: 32, WndSize: 1 << 20, SeqNr: 0xabcd,
		AckNr: 7, SACK: []byte{1, 1, 0, 0}}
	require.Equal(t, want, h)
	require.Equal(t, "xyz", string(payload))
	for bit, set := range map[int]bool{0: true, 8: true, 1: false, 40: false} {
		require.Equal(t, set, SACKBit(h.SACK, bit), "SACK bit %d", bit)
	}
	require.Equal(t, sample[:len(sample)-3], h.Append(nil), "re-encoded")
}

func TestDecodeErrors(t *testing.T) {
	hdr := func(first, ext byte, tail ...byte) []byte {
		b := append([]byte{first, ext}, make([]byte, 18)...)
		return append(b, tail...)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"19 bytes", make([]byte, 19), ErrShort},
		{"version 0", hdr(0x00, 0), ErrVersion},
		{"version 2", hdr(0x12, 0), ErrVersion},
		{"type 5", hdr(0x51, 0), ErrType},
		{"type 15", hdr(0xf1, 0), ErrType},
		{"extension without head", hdr(0x01, 1), ErrExtension},
		{"extension head only", hdr(0x01, 7, 0), ErrExtension},
		{"extension longer than packet", hdr(0x01, 7, 0, 5, 1, 2), ErrExtension},
		{"SACK of 3 bytes", hdr(0x01, 1, 0, 3, 1, 2, 3), ErrExtension},
		{"SACK of 0 bytes", hdr(0x21, 1, 0, 0), ErrExtension},
		{"second extension truncated", hdr(0x21, 1, 9, 4, 1, 2, 3, 4, 0), ErrExtension},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Header
			_, err := h.Decode(tc.b)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestUnknownExtensionSkipped(t *testing.T) {
	b := append([]byte{0x01, 9}, make([]byte, 18)...) // DATA, extension 9 first
	b = append(b, 1, 2, 0xaa, 0xbb)                   // extension 9: next is SACK, 2 bytes
	b = append(b, 0, 4, 0x80, 0, 0, 0)                // SACK: bit 7
	b = append(b, 'p')
	var h Header
	p, err := h.Decode(b)
	require.NoError(t, err)
	require.Equal(t, "p", string(p))
	require.True(t, SACKBit(h.SACK, 7), "sack %x", h.SACK)
}

func TestPaddingRoundTrip(t *testing.T) {
	for i, pad := range []int{0, 2, 3, 100, 256, 257, 258, 259, 600, 1400} {
		for _, sack := range [][]byte{nil, {1, 2, 3, 4}} {
			dup := i%2 == 1
			h := Header{Type: Data, ConnID: 9, SeqNr: 3, AckNr: 4, SACK: sack, Padding: pad, Duplicate: 0xbeef,
				HasDuplicate: dup}
			b := h.Append([]byte("prefix"))[len("prefix"):]
			require.Len(t, b, h.Len(), "pad %d: encoded bytes against Len", pad)
			b = append(b, "data"...)
			var got Header
			p, err := got.Decode(b)
			require.NoError(t, err, "pad %d", pad)
			require.Equal(t, "data", string(p), "pad %d", pad)
			require.Equal(t, sack, got.SACK, "pad %d", pad)
			require.Equal(t, uint16(3), got.SeqNr, "pad %d", pad)
			require.Equal(t, dup, got.HasDuplicate, "pad %d", pad)
			if dup {
				require.Equal(t, uint16(0xbeef), got.Duplicate, "pad %d", pad)
			}
		}
	}
}

func TestSeqLess(t *testing.T) {
	for _, tc := range []struct {
		a, b uint16
		want bool
	}{{1, 2, true}, {2, 1, false}, {1, 1, false}, {65535, 0, true}, {0, 65535, false}, {0, 32767, true}} {
		assert.Equal(t, tc.want, SeqLess(tc.a, tc.b), "SeqLess(%d, %d)", tc.a, tc.b)
	}
}

// FuzzDecode checks that any input either fails with one of the codec's errors
// or decodes to a header that re-encodes to a packet decoding the same way.
func FuzzDecode(f *testing.F) {
	f.Add(sample)
	f.Add((&Header{Type: Syn, ConnID: 1, SeqNr: 1}).Append(nil))
	f.Add((&Header{Type: Data, Padding: 300, SACK: make([]byte, 8)}).Append(nil))
	f.Add((&Header{Type: State, HasDuplicate: true, Duplicate: 7}).Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		p, err := h.Decode(b)
		if err != nil {
			require.True(t, errors.Is(err, ErrShort) || errors.Is(err, ErrVersion) || errors.Is(err, ErrType) ||
				errors.Is(err, ErrExtension), "unexpected error %v", err)
			return
		}
		enc := append(h.Append(nil), p...)
		var h2 Header
		p2, err := h2.Decode(enc)
		require.NoError(t, err, "re-encoded packet does not decode")
		require.Equal(t, h, h2, "round trip changed the header")
		require.Equal(t, string(p), string(p2), "round trip changed the payload")
	})
}

func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	var h Header
	for b.Loop() {
		if _, err := h.Decode(sample); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	b.ReportAllocs()
	h := Header{Type: Data, ConnID: 7, SeqNr: 9, AckNr: 3, SACK: []byte{1, 2, 3, 4}}
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = h.Append(buf[:0])
	}
}
