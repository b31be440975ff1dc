package wire

import (
	"bytes"
	"errors"
	"testing"
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
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Type: State, ConnID: 0x1234, Timestamp: 16, TimestampDiff: 32, WndSize: 1 << 20, SeqNr: 0xabcd,
		AckNr: 7, SACK: []byte{1, 1, 0, 0}}
	if h.Type != want.Type || h.ConnID != want.ConnID || h.Timestamp != want.Timestamp ||
		h.TimestampDiff != want.TimestampDiff || h.WndSize != want.WndSize || h.SeqNr != want.SeqNr ||
		h.AckNr != want.AckNr || !bytes.Equal(h.SACK, want.SACK) {
		t.Fatalf("decoded %+v, want %+v", h, want)
	}
	if string(payload) != "xyz" {
		t.Fatalf("payload %q", payload)
	}
	if !SACKBit(h.SACK, 0) || !SACKBit(h.SACK, 8) || SACKBit(h.SACK, 1) || SACKBit(h.SACK, 40) {
		t.Fatal("SACK bits wrong")
	}
	if got := h.Append(nil); !bytes.Equal(got, sample[:len(sample)-3]) {
		t.Fatalf("re-encoded\n%x, want\n%x", got, sample[:len(sample)-3])
	}
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
			if _, err := h.Decode(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
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
	if err != nil || string(p) != "p" || !SACKBit(h.SACK, 7) {
		t.Fatalf("payload %q, sack %x, err %v", p, h.SACK, err)
	}
}

func TestPaddingRoundTrip(t *testing.T) {
	for i, pad := range []int{0, 2, 3, 100, 256, 257, 258, 259, 600, 1400} {
		for _, sack := range [][]byte{nil, {1, 2, 3, 4}} {
			dup := i%2 == 1
			h := Header{Type: Data, ConnID: 9, SeqNr: 3, AckNr: 4, SACK: sack, Padding: pad, Duplicate: 0xbeef,
				HasDuplicate: dup}
			b := h.Append([]byte("prefix"))[len("prefix"):]
			if len(b) != h.Len() {
				t.Fatalf("pad %d: encoded %d bytes, Len says %d", pad, len(b), h.Len())
			}
			b = append(b, "data"...)
			var got Header
			p, err := got.Decode(b)
			if err != nil || string(p) != "data" || !bytes.Equal(got.SACK, sack) || got.SeqNr != 3 ||
				got.HasDuplicate != dup || dup && got.Duplicate != 0xbeef {
				t.Fatalf("pad %d: %+v %q %v", pad, got, p, err)
			}
		}
	}
}

func TestSeqLess(t *testing.T) {
	for _, tc := range []struct {
		a, b uint16
		want bool
	}{{1, 2, true}, {2, 1, false}, {1, 1, false}, {65535, 0, true}, {0, 65535, false}, {0, 32767, true}} {
		if got := SeqLess(tc.a, tc.b); got != tc.want {
			t.Errorf("SeqLess(%d, %d) = %v", tc.a, tc.b, got)
		}
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
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrType) &&
				!errors.Is(err, ErrExtension) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		enc := append(h.Append(nil), p...)
		var h2 Header
		p2, err := h2.Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded packet does not decode: %v", err)
		}
		if h2.Type != h.Type || h2.ConnID != h.ConnID || h2.SeqNr != h.SeqNr || h2.AckNr != h.AckNr ||
			h2.WndSize != h.WndSize || h2.Timestamp != h.Timestamp || h2.TimestampDiff != h.TimestampDiff ||
			!bytes.Equal(h2.SACK, h.SACK) || h2.HasDuplicate != h.HasDuplicate || h2.Duplicate != h.Duplicate ||
			!bytes.Equal(p2, p) {
			t.Fatalf("round trip changed %+v into %+v", h, h2)
		}
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
