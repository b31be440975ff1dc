package utp

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzOpen: whatever arrives for a path, opening it never panics, and only what the peer sealed opens: any datagram
// that opens reseals, under its counter, to itself. aes picks the path's cipher (AES-256-GCM or ChaCha20-Poly1305).
func FuzzOpen(f *testing.F) {
	secret := make([]byte, 32)
	keys := map[bool][2]pathKeys{}
	for _, aes := range []bool{false, true} {
		c := ChaCha20Poly1305
		if aes {
			c = AES256GCM
		}
		dialer, err := derivePathKeys(secret, true, c, false)
		require.NoError(f, err)
		acceptor, err := derivePathKeys(secret, false, c, false)
		require.NoError(f, err)
		keys[aes] = [2]pathKeys{dialer, acceptor}
		f.Add(aes, sealCtrl(dialer, 1, kindPunch, 0, u64(7)))
		f.Add(aes, sealCtrl(dialer, 9, kindPunchReply, flagConfirmed, punchReplyBody(1, netip.MustParseAddrPort("127.0.0.1:9"))))
		f.Add(aes, sealDatagram(dialer, 1<<40, []byte{0x41, 0, 0, 0}))
		f.Add(!aes, sealDatagram(dialer, 1<<40, []byte{0x41, 0, 0, 0})) // the other cipher's datagram
		f.Add(aes, []byte{sealedType})
	}
	f.Fuzz(func(t *testing.T, aes bool, b []byte) {
		dialer, acceptor := keys[aes][0], keys[aes][1]
		in := slices.Clone(b)
		counter, plain, ok := acceptor.open(acceptor.recv, in)
		if !ok {
			return
		}
		buf := append(make([]byte, sealedHeader, sealedHeader+len(plain)+16), plain...)
		resealed := dialer.seal(buf, counter)
		require.True(t, bytes.Equal(resealed, b), "%x opened but reseals to %x", b, resealed)
	})
}

// FuzzControlPacket: the control-packet parser never panics and accepts only bodies of the right size.
func FuzzControlPacket(f *testing.F) {
	f.Add([]byte{byte(kindPunch), 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(append([]byte{byte(kindPunchReply), flagConfirmed}, punchReplyBody(3, netip.MustParseAddrPort("[::1]:9"))...))
	f.Add([]byte{byte(kindBye), 0})
	f.Add(append([]byte{byte(kindRelayMove), flagRelayMoves}, relayMoveBody(netip.MustParseAddrPort("192.0.2.1:9"), netip.MustParseAddrPort("[2001:db8::1]:7"))...))
	f.Add(append([]byte{byte(kindRelayMoveAck), 0}, appendAddr(nil, netip.MustParseAddrPort("192.0.2.1:9"))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCtrl(b)
		if err != nil {
			return
		}
		switch c.kind {
		case kindPunchReply:
			parseObserved(c.body)
			parseEcho(c.body)
		case kindProbeEcho:
			parseEcho(c.body)
		case kindRelayMove:
			parseRelayMove(c.body)
		case kindRelayMoveAck:
			parseAddr(c.body)
		case kindPunch, kindProbe, kindBye:
		default:
			t.Fatalf("kind %d accepted", c.kind)
		}
	})
}

// FuzzDemux: whatever arrives on the socket, sorting it (and decoding STUN) never panics, and everything that is
// not STUN is counted as dropped (no path is open).
func FuzzDemux(f *testing.F) {
	tr, err := Listen("udp4", "127.0.0.1:0", Config{})
	require.NoError(f, err)
	f.Cleanup(func() { tr.Close() })
	from := netip.MustParseAddrPort("127.0.0.1:9")
	f.Add([]byte{0x41, 0, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x01, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{sealedType})
	f.Fuzz(func(t *testing.T, b []byte) {
		before := tr.Stats()
		tr.dispatch(slices.Clone(b), from, nil)
		after := tr.Stats()
		if !isSTUN(b) {
			require.Equal(t, before.Stranger+1, after.Stranger, "a stranger's datagram was not counted: %+v -> %+v", before, after)
		}
	})
}
