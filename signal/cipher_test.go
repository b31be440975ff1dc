package signal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Both sides pick the host's best cipher that the guest offers too: AES-256-GCM only when both offer it (both have
// the hardware), ChaCha20-Poly1305 otherwise, and a clear error when nothing is common.
func TestChooseCipher(t *testing.T) {
	const aes, chacha = "aes-256-gcm", "chacha20-poly1305"
	for _, tc := range []struct {
		host, guest []string
		want        string // empty: ErrNoCommonCipher
		older       bool   // the error names an older peer
	}{
		{[]string{aes, chacha}, []string{aes, chacha}, aes, false},
		{[]string{aes, chacha}, []string{chacha}, chacha, false},
		{[]string{chacha}, []string{aes, chacha}, chacha, false},
		{[]string{chacha, aes}, []string{aes, chacha}, chacha, false}, // the host's preference decides
		{[]string{"future-aead", chacha}, []string{aes, chacha}, chacha, false},
		{[]string{aes}, []string{chacha}, "", false},
		{nil, []string{chacha}, "", true},
		{[]string{chacha}, nil, "", true},
	} {
		name := fmt.Sprintf("host %q guest %q", tc.host, tc.guest)
		got, err := chooseCipher(tc.host, tc.guest)
		if tc.want == "" {
			require.ErrorIs(t, err, ErrNoCommonCipher, name)
			assert.Equal(t, tc.older, bytes.Contains([]byte(err.Error()), []byte("older p2phttp")), "%s: %v", name, err)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, tc.want, got, name)
	}
}

func TestValidateCiphers(t *testing.T) {
	require.NoError(t, validateCiphers([]string{"aes-256-gcm", "chacha20-poly1305"}))
	for name, cs := range map[string][]string{
		"none":      {},
		"too many":  {"a", "b", "c", "d", "e", "f", "g", "h", "i"},
		"empty":     {""},
		"too long":  {string(bytes.Repeat([]byte{'a'}, maxCipherName+1))},
		"uppercase": {"AES-256-GCM"},
		"space":     {"aes 256"},
		"control":   {"aes\x1b[31m"},
		"twice":     {"aes-256-gcm", "aes-256-gcm"},
	} {
		assert.Error(t, validateCiphers(cs), name)
	}
	got, err := ourCiphers(nil)
	require.NoError(t, err)
	require.Equal(t, []string{DefaultCipher}, got, "the default offer")
	_, err = ourCiphers([]string{"Bad"})
	require.Error(t, err)
}

// A peer's second message whose cipher offer is absent (a peer older than cipher negotiation) leaves the offer nil,
// which chooseCipher reports as ErrNoCommonCipher; one whose offer is malformed is ErrBadMessage. Neither panics.
func TestPeerCipherOffers(t *testing.T) {
	code := mustCode(t, "7-amber-otter")
	r := runHandshake(t, code, code, testMeeting, nil)
	require.NoError(t, r.err, r.step)
	cands, err := json.Marshal(guestCands)
	require.NoError(t, err)
	for _, tc := range []struct {
		name, offer string
		bad         bool
	}{
		{"absent", ``, false},
		{"null", `,"ciphers":null`, false},
		{"empty", `,"ciphers":[]`, true},
		{"not a list", `,"ciphers":"aes-256-gcm"`, true},
		{"numbers", `,"ciphers":[1,2]`, true},
		{"too many", `,"ciphers":["a","b","c","d","e","f","g","h","i"]`, true},
		{"escape codes", `,"ciphers":["\u001b[2J"]`, true},
		{"unknown only", `,"ciphers":["rot13"]`, false},
	} {
		plain := []byte(`{"candidates":` + string(cands) + tc.offer + `}`)
		sealed := r.guest.aead().Seal(nil, nonce("guest"), plain, []byte("guest"))
		peer, _, err := r.host.hostConfirm(append(r.guest.confirmation("guest"), sealed...), hostCands, testCiphers)
		if tc.bad {
			require.ErrorIs(t, err, ErrBadMessage, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		require.Equal(t, guestCands, peer.Candidates, tc.name)
		_, err = chooseCipher(testCiphers, peer.Ciphers)
		require.ErrorIs(t, err, ErrNoCommonCipher, tc.name)
	}
}

// The offers are bound to the meeting's keys: changing any byte of either side's sealed offer (a signalling server
// trying to strike AES-256-GCM from it, say) makes the message fail to open, so the meeting fails rather than
// settle on another cipher.
func TestCipherOfferTamperingFails(t *testing.T) {
	code := mustCode(t, "7-amber-otter")
	var gm1, hm1 []byte
	r := runHandshake(t, code, code, testMeeting, func(step string, b []byte) []byte {
		switch step {
		case "guest1":
			gm1 = bytes.Clone(b)
		case "host1":
			hm1 = bytes.Clone(b)
		}
		return b
	})
	require.NoError(t, r.err, r.step)
	for i := macSize; i < len(gm1); i++ {
		b := bytes.Clone(gm1)
		b[i] ^= 0x01
		_, _, err := r.host.hostConfirm(b, hostCands, testCiphers)
		require.ErrorIs(t, err, ErrConfirmFailed, "guest's sealed offer with byte %d changed", i)
	}
	for i := range hm1 {
		b := bytes.Clone(hm1)
		b[i] ^= 0x01
		_, err := r.guest.guestOpen(b)
		require.ErrorIs(t, err, ErrConfirmFailed, "host's sealed offer with byte %d changed", i)
	}
	// Nor can a message be cut short or swapped for the other side's.
	_, err := r.guest.guestOpen(hm1[:len(hm1)-1])
	require.ErrorIs(t, err, ErrConfirmFailed)
	_, err = r.guest.guestOpen(gm1[macSize:])
	require.ErrorIs(t, err, ErrConfirmFailed)
}
