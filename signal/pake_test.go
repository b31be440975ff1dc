package signal

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	guestCands = []Candidate{{Kind: KindHost, Addr: netip.MustParseAddrPort("192.0.2.10:4000")}}
	hostCands  = []Candidate{{Kind: KindSrflx, Addr: netip.MustParseAddrPort("198.51.100.7:5000")},
		{Kind: KindHost, Addr: netip.MustParseAddrPort("10.0.0.2:5000")}}
)

func mustCode(t testing.TB, s string) Code {
	t.Helper()
	c, err := ParseCode(s)
	require.NoError(t, err)
	return c
}

// Both sides offer both ciphers in the handshake tests.
var testCiphers = []string{"aes-256-gcm", "chacha20-poly1305"}

// handshakeResult is what each side ends with, or the first error.
type handshakeResult struct {
	guest, host *handshake
	guestPeer   sealedMessage // what the guest got from the host
	hostPeer    sealedMessage // what the host got from the guest
	err         error
	step        string
}

// runHandshake runs the four messages between a guest with guestCode and a host with hostCode, passing each message
// through alter (which may change it) on the way.
func runHandshake(t testing.TB, guestCode, hostCode Code, meeting string, alter func(step string, b []byte) []byte) handshakeResult {
	t.Helper()
	if alter == nil {
		alter = func(_ string, b []byte) []byte { return b }
	}
	var r handshakeResult
	g, gm0, err := newGuestHandshake(guestCode, meeting)
	require.NoError(t, err)
	r.guest = g
	h, hm0, err := newHostHandshake(hostCode, meeting, alter("guest0", gm0))
	if err != nil {
		r.err, r.step = err, "host0"
		return r
	}
	r.host = h
	gm1, err := g.guestConfirm(alter("host0", hm0), guestCands, testCiphers)
	if err != nil {
		r.err, r.step = err, "guest1"
		return r
	}
	var hm1 []byte
	r.hostPeer, hm1, err = h.hostConfirm(alter("guest1", gm1), hostCands, testCiphers)
	if err != nil {
		r.err, r.step = err, "host1"
		return r
	}
	r.guestPeer, err = g.guestOpen(alter("host1", hm1))
	if err != nil {
		r.err, r.step = err, "open"
	}
	return r
}

const testMeeting = "0123456789abcdef0123456789abcdef"

func TestHandshake(t *testing.T) {
	code := mustCode(t, "7-amber-otter")
	r := runHandshake(t, code, code, testMeeting, nil)
	require.NoError(t, r.err, r.step)
	require.Equal(t, r.guest.keys.path, r.host.keys.path, "the two sides derived different path keys")
	require.Len(t, r.guest.keys.path, KeySize, "path key")
	require.Equal(t, r.guest.keys.verifier, r.host.keys.verifier, "verifiers")
	require.NotEmpty(t, r.guest.keys.verifier, "verifier")
	require.Equal(t, sealedMessage{Candidates: hostCands, Ciphers: testCiphers}, r.guestPeer, "what the guest got")
	require.Equal(t, sealedMessage{Candidates: guestCands, Ciphers: testCiphers}, r.hostPeer, "what the host got")
	for _, k := range [][]byte{r.guest.keys.confirm, r.guest.keys.candidates} {
		require.NotEqual(t, r.guest.keys.path, k, "keys are not separated")
	}
	// Every meeting has its own keys, even with the same code and meeting ID: the PAKE is randomised.
	r2 := runHandshake(t, code, code, testMeeting, nil)
	require.NoError(t, r2.err, "second meeting: %s", r2.step)
	require.NotEqual(t, r.guest.keys.path, r2.guest.keys.path, "a second meeting repeated the path key")
	require.NotEqual(t, r.guest.keys.verifier, r2.guest.keys.verifier, "a second meeting repeated the verifier")
}

func TestHandshakeWrongCode(t *testing.T) {
	for _, tc := range []struct{ guest, host string }{
		{"7-amber-otter", "7-amber-otters"},
		{"7-amber-otter", "8-amber-otter"}, // the nameplate is bound in: a code moved to another nameplate fails
		{"7-otter-amber", "7-amber-otter"},
	} {
		r := runHandshake(t, mustCode(t, tc.guest), mustCode(t, tc.host), testMeeting, nil)
		// The host confirms first, so the guest is the one that notices; it sends nothing sealed.
		assert.ErrorIs(t, r.err, ErrConfirmFailed, "guest %s, host %s", tc.guest, tc.host)
		assert.Equal(t, "guest1", r.step, "guest %s, host %s: failing step", tc.guest, tc.host)
	}
}

// A guest that lies about having verified the host (an attacker replying with garbage) is caught by the host before
// it sends its candidates.
func TestHandshakeForgedGuestConfirmation(t *testing.T) {
	code := mustCode(t, "7-amber-otter")
	r := runHandshake(t, code, code, testMeeting, func(step string, b []byte) []byte {
		if step == "guest1" {
			b = bytes.Clone(b)
			b[0] ^= 1
		}
		return b
	})
	require.ErrorIs(t, r.err, ErrConfirmFailed, r.step)
	require.Equal(t, "host1", r.step, "failing step")
}

// Whatever a party in the middle changes in any message, the meeting fails; nothing it changes goes unnoticed.
func TestHandshakeTampering(t *testing.T) {
	code := mustCode(t, "7-amber-otter")
	for _, step := range []string{"guest0", "host0", "guest1", "host1"} {
		for _, pos := range []int{1, 40, -1} {
			r := runHandshake(t, code, code, testMeeting, func(s string, b []byte) []byte {
				if s != step {
					return b
				}
				b = bytes.Clone(b)
				i := pos
				if i < 0 {
					i = len(b) - 1
				}
				b[i] ^= 0x04
				return b
			})
			assert.Error(t, r.err, "flipping byte %d of %s went unnoticed", pos, step)
		}
	}
}

// Messages are bound to their meeting: the same exchange under two meeting IDs fails.
func TestHandshakeBoundToMeeting(t *testing.T) {
	code := mustCode(t, "7-amber-otter")
	g, gm0, _ := newGuestHandshake(code, testMeeting)
	_, hm0, err := newHostHandshake(code, "ffffffffffffffffffffffffffffffff", gm0)
	require.NoError(t, err)
	_, err = g.guestConfirm(hm0, guestCands, testCiphers)
	require.ErrorIs(t, err, ErrConfirmFailed)
}

func TestHandshakeMalformed(t *testing.T) {
	code := mustCode(t, "7-amber-otter")
	_, gm0, _ := newGuestHandshake(code, testMeeting)
	for name, msg := range map[string][]byte{
		"empty":          nil,
		"version only":   {wireVersion},
		"version 1":      append([]byte{1}, gm0[1:]...),
		"not JSON":       []byte("\x02hello"),
		"no role":        append([]byte{wireVersion}, `{"Xᵤ":1,"Xᵥ":2}`...),
		"host role":      append([]byte{wireVersion}, `{"Role":1,"Yᵤ":1,"Yᵥ":2}`...),
		"no point":       append([]byte{wireVersion}, `{"Role":0}`...),
		"half a point":   append([]byte{wireVersion}, `{"Role":0,"Xᵤ":1}`...),
		"not on curve":   append([]byte{wireVersion}, `{"Role":0,"Xᵤ":1,"Xᵥ":2}`...),
		"infinity":       append([]byte{wireVersion}, `{"Role":0,"Xᵤ":0,"Xᵥ":0}`...),
		"negative":       append([]byte{wireVersion}, `{"Role":0,"Xᵤ":-1,"Xᵥ":-2}`...),
		"huge":           append([]byte{wireVersion}, `{"Role":0,"Xᵤ":1e400,"Xᵥ":2}`...),
		"reflected host": nil, // filled below
	} {
		if name == "reflected host" {
			// The guest's own message reflected back to it as the host's answer.
			g, gm0, _ := newGuestHandshake(code, testMeeting)
			_, err := g.guestConfirm(append(gm0[1:], make([]byte, macSize)...), guestCands, testCiphers)
			assert.ErrorIs(t, err, ErrBadMessage, "reflected")
			continue
		}
		_, _, err := newHostHandshake(code, testMeeting, msg)
		assert.ErrorIs(t, err, ErrBadMessage, name)
	}
}

// FuzzHostHandshake feeds the host whatever a guest (or the server) might send: it must fail cleanly, never panic.
func FuzzHostHandshake(f *testing.F) {
	code := Code{Nameplate: 7, Secret: "amber-otter"}
	_, gm0, _ := newGuestHandshake(code, testMeeting)
	f.Add(gm0)
	f.Add([]byte{wireVersion, '{', '}'})
	f.Add(append([]byte{wireVersion}, `{"Role":0,"Xᵤ":0,"Xᵥ":1}`...))
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, reply, err := newHostHandshake(code, testMeeting, msg)
		if err != nil {
			return
		}
		_, _, err = h.hostConfirm(reply, guestCands, testCiphers)
		require.Error(t, err, "a forged confirmation verified")
	})
}

func TestVerifierWords(t *testing.T) {
	v := verifierWords(make([]byte, 8*verifierWordCount))
	require.Equal(t, adjectives[0]+"-"+nouns[0]+"-"+adjectives[0]+"-"+nouns[0], v, "verifier of zeros")
}
