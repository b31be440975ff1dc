package utp

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzControlPacket: the control-packet parser never panics, never accepts a MAC it did not make, and reads back
// exactly what was sealed.
func FuzzControlPacket(f *testing.F) {
	m := newMacer(deriveKeys(make([]byte, 32)).control)
	f.Add(m.appendCtrl(nil, ctrlPacket{kind: kindPunch, instance: 1, counter: 1}))
	f.Add(m.appendCtrl(nil, ctrlPacket{kind: kindPunchReply, flags: flagConfirmed, instance: 2, counter: 9,
		body: punchReplyBody(1, 1, netip.MustParseAddrPort("127.0.0.1:9"))}))
	f.Add(m.appendCtrl(nil, ctrlPacket{kind: kindOpenRequest, instance: 3, counter: 4, body: make([]byte, 8)}))
	f.Add([]byte{ctrlMagic, ctrlVersion, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseCtrl(b)
		if err != nil {
			return
		}
		if p.kind == kindPunchReply {
			parseObserved(p.body)
		}
		if p.kind == kindPunchReply || p.kind == kindProbeEcho {
			parseEcho(p.body)
		}
		resealed := m.appendCtrl(nil, p)
		if !bytes.Equal(resealed[:len(resealed)-macSize], b[:len(b)-macSize]) {
			t.Fatalf("parse/seal changed the packet: %x -> %x", b, resealed)
		}
		if m.verify(b) != bytes.Equal(resealed, b) {
			t.Fatalf("verify disagrees with resealing for %x", b)
		}
	})
}

// FuzzDemux: whatever arrives on the socket, sorting it (and decoding STUN) never panics, and nothing from an
// unknown address reaches uTP.
func FuzzDemux(f *testing.F) {
	tr, err := Listen("udp4", "127.0.0.1:0", Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close() })
	from := netip.MustParseAddrPort("127.0.0.1:9")
	f.Add([]byte{0x41, 0, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x01, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{ctrlMagic})
	f.Fuzz(func(t *testing.T, b []byte) {
		before := tr.utpDrops.Load()
		if tr.dispatch(b, from) != nil {
			t.Fatal("a datagram from a stranger was handed to uTP")
		}
		if toUTP := !isControl(b) && !isSTUN(b); toUTP && tr.utpDrops.Load() != before+1 {
			t.Fatal("a datagram from a stranger was not counted as dropped")
		}
	})
}
