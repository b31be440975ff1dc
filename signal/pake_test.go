package signal

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

var (
	guestCands = []Candidate{{Kind: KindHost, Addr: netip.MustParseAddrPort("192.0.2.10:4000")}}
	hostCands  = []Candidate{{Kind: KindSrflx, Addr: netip.MustParseAddrPort("198.51.100.7:5000")},
		{Kind: KindHost, Addr: netip.MustParseAddrPort("10.0.0.2:5000")}}
)

func mustCode(t testing.TB, s string) Code {
	t.Helper()
	c, err := ParseCode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshakeResult is what each side ends with, or the first error.
type handshakeResult struct {
	guest, host *handshake
	guestPeer   []Candidate
	hostPeer    []Candidate
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
	if err != nil {
		t.Fatal(err)
	}
	r.guest = g
	h, hm0, err := newHostHandshake(hostCode, meeting, alter("guest0", gm0))
	if err != nil {
		r.err, r.step = err, "host0"
		return r
	}
	r.host = h
	gm1, err := g.guestConfirm(alter("host0", hm0), guestCands)
	if err != nil {
		r.err, r.step = err, "guest1"
		return r
	}
	var hm1 []byte
	r.hostPeer, hm1, err = h.hostConfirm(alter("guest1", gm1), hostCands)
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
	if r.err != nil {
		t.Fatalf("%s: %v", r.step, r.err)
	}
	if !bytes.Equal(r.guest.keys.path, r.host.keys.path) || len(r.guest.keys.path) != KeySize {
		t.Fatal("the two sides derived different path keys")
	}
	if r.guest.keys.verifier != r.host.keys.verifier || r.guest.keys.verifier == "" {
		t.Fatalf("verifiers %q and %q", r.guest.keys.verifier, r.host.keys.verifier)
	}
	if !equalCands(r.guestPeer, hostCands) || !equalCands(r.hostPeer, guestCands) {
		t.Fatalf("candidates: guest got %v, host got %v", r.guestPeer, r.hostPeer)
	}
	for _, k := range [][]byte{r.guest.keys.confirm, r.guest.keys.candidates} {
		if bytes.Equal(k, r.guest.keys.path) {
			t.Fatal("keys are not separated")
		}
	}
	// Every meeting has its own keys, even with the same code and meeting ID: the PAKE is randomised.
	r2 := runHandshake(t, code, code, testMeeting, nil)
	if r2.err != nil || bytes.Equal(r2.guest.keys.path, r.guest.keys.path) || r2.guest.keys.verifier == r.guest.keys.verifier {
		t.Fatalf("a second meeting repeated the keys (%v)", r2.err)
	}
}

func equalCands(a, b []Candidate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHandshakeWrongCode(t *testing.T) {
	for _, tc := range []struct{ guest, host string }{
		{"7-amber-otter", "7-amber-otters"},
		{"7-amber-otter", "8-amber-otter"}, // the nameplate is bound in: a code moved to another nameplate fails
		{"7-otter-amber", "7-amber-otter"},
	} {
		r := runHandshake(t, mustCode(t, tc.guest), mustCode(t, tc.host), testMeeting, nil)
		// The host confirms first, so the guest is the one that notices; it sends nothing sealed.
		if !errors.Is(r.err, ErrConfirmFailed) || r.step != "guest1" {
			t.Errorf("guest %s, host %s: %s: %v; want ErrConfirmFailed at guest1", tc.guest, tc.host, r.step, r.err)
		}
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
	if !errors.Is(r.err, ErrConfirmFailed) || r.step != "host1" {
		t.Fatalf("%s: %v; want ErrConfirmFailed at host1", r.step, r.err)
	}
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
			if r.err == nil {
				t.Errorf("flipping byte %d of %s went unnoticed", pos, step)
			}
		}
	}
}

// Messages are bound to their meeting: the same exchange under two meeting IDs fails.
func TestHandshakeBoundToMeeting(t *testing.T) {
	code := mustCode(t, "7-amber-otter")
	g, gm0, _ := newGuestHandshake(code, testMeeting)
	_, hm0, err := newHostHandshake(code, "ffffffffffffffffffffffffffffffff", gm0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.guestConfirm(hm0, guestCands); !errors.Is(err, ErrConfirmFailed) {
		t.Fatalf("got %v, want ErrConfirmFailed", err)
	}
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
			if _, err := g.guestConfirm(append(gm0[1:], make([]byte, macSize)...), guestCands); !errors.Is(err, ErrBadMessage) {
				t.Errorf("reflected: got %v, want ErrBadMessage", err)
			}
			continue
		}
		if _, _, err := newHostHandshake(code, testMeeting, msg); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: got %v, want ErrBadMessage", name, err)
		}
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
		if _, _, err := h.hostConfirm(reply, guestCands); err == nil {
			t.Fatal("a forged confirmation verified")
		}
	})
}

func TestVerifierWords(t *testing.T) {
	v := verifierWords(make([]byte, 8*verifierWordCount))
	if v != adjectives[0]+"-"+nouns[0]+"-"+adjectives[0]+"-"+nouns[0] {
		t.Fatalf("verifier of zeros: %q", v)
	}
}
