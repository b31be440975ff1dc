package signal

import (
	"errors"
	"fmt"
	"slices"
)

// The peers agree on the cipher that will seal their path during the meeting: each side offers the ciphers it can
// use, best first, inside its sealed second message (HostConfig.Ciphers, JoinConfig.Ciphers), and both pick the
// host's best that the guest offers too (Meeting.Cipher). The offers travel under the meeting's AEAD, whose key is
// bound to the transcript: a server that drops a cipher from an offer, or swaps the offers of two meetings, makes
// the message fail to open (ErrConfirmFailed), so it cannot push the peers to a cipher neither would pick.

// DefaultCipher is the path cipher a side offers when its configuration names none: ChaCha20-Poly1305, by the name
// package transport/utp gives it, which every p2phttp peer supports.
const DefaultCipher = "chacha20-poly1305"

// MaxCiphers caps the ciphers one side may offer; a cipher's name has at most maxCipherName characters.
const (
	MaxCiphers    = 8
	maxCipherName = 32
)

// ErrNoCommonCipher: the two sides offered no path cipher in common (or the other side offered none, as a
// p2phttp older than cipher negotiation does). Both sides fail the meeting with it.
var ErrNoCommonCipher = errors.New("signal: the peers have no path cipher in common")

// validateCiphers checks an offer: 1 to MaxCiphers distinct names of lowercase letters, digits and dashes.
func validateCiphers(cs []string) error {
	if len(cs) == 0 || len(cs) > MaxCiphers {
		return fmt.Errorf("want 1 to %d ciphers, got %d", MaxCiphers, len(cs))
	}
	for i, c := range cs {
		if len(c) == 0 || len(c) > maxCipherName {
			return fmt.Errorf("cipher %d: name of %d characters (want 1 to %d)", i, len(c), maxCipherName)
		}
		for _, r := range c {
			if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
				return fmt.Errorf("cipher %d: name %q is not lowercase letters, digits and dashes", i, c)
			}
		}
		if slices.Contains(cs[:i], c) {
			return fmt.Errorf("cipher %q offered twice", c)
		}
	}
	return nil
}

// ourCiphers is the offer of a side configured with cs: cs, or DefaultCipher alone when cs is empty.
func ourCiphers(cs []string) ([]string, error) {
	if len(cs) == 0 {
		return []string{DefaultCipher}, nil
	}
	if err := validateCiphers(cs); err != nil {
		return nil, fmt.Errorf("our ciphers: %w", err)
	}
	return slices.Clone(cs), nil
}

// chooseCipher picks the host's best cipher that the guest offers too. Both sides call it with the same offers, so
// both pick the same.
func chooseCipher(host, guest []string) (string, error) {
	for _, c := range host {
		if slices.Contains(guest, c) {
			return c, nil
		}
	}
	switch {
	case len(host) == 0:
		return "", fmt.Errorf("%w: the host offered none (it runs an older p2phttp?)", ErrNoCommonCipher)
	case len(guest) == 0:
		return "", fmt.Errorf("%w: the guest offered none (it runs an older p2phttp?)", ErrNoCommonCipher)
	}
	return "", fmt.Errorf("%w: the host offered %q, the guest %q", ErrNoCommonCipher, host, guest)
}
