package utp

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/cpu"
)

// Cipher names the AEAD that seals a path's datagrams. Both peers of a path must use the same one: they agree on
// it while they meet (package signal negotiates it inside the authenticated meeting; package rendezvous hands the
// result to Peer.Cipher). The names are those the meeting messages carry.
type Cipher string

// The ciphers a path can seal with. Both take a 256-bit key and a 96-bit nonce and add a 16-byte tag.
const (
	// ChaCha20Poly1305 (RFC 8439) is fast and constant-time in software on every CPU. Every peer supports it.
	ChaCha20Poly1305 Cipher = "chacha20-poly1305"
	// AES256GCM is faster than ChaCha20Poly1305 on CPUs with AES and carry-less multiplication instructions, and
	// slow (and not constant-time) without them: Ciphers offers it only where the hardware has them.
	AES256GCM Cipher = "aes-256-gcm"
)

// ErrUnknownCipher is what Connect returns for a Peer.Cipher this package does not implement.
var ErrUnknownCipher = errors.New("utp: unknown cipher")

// Ciphers returns the ciphers this machine seals with well, best first: AES256GCM then ChaCha20Poly1305 when the
// CPU has the instructions Go's AES-GCM uses (as crypto/tls decides its own order), ChaCha20Poly1305 alone
// otherwise. A peer offers these when it meets another; the caller owns the slice.
func Ciphers() []Cipher {
	if hasAESGCMHardware {
		return []Cipher{AES256GCM, ChaCha20Poly1305}
	}
	return []Cipher{ChaCha20Poly1305}
}

// hasAESGCMHardware: the CPU has AES rounds and carry-less multiplication (GHASH) in hardware, which Go's
// crypto/aes and crypto/cipher use. The same test as crypto/tls's.
var hasAESGCMHardware = cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ ||
	cpu.ARM64.HasAES && cpu.ARM64.HasPMULL ||
	cpu.S390X.HasAES && cpu.S390X.HasAESCBC && cpu.S390X.HasAESCTR && (cpu.S390X.HasGHASH || cpu.S390X.HasAESGCM) ||
	runtime.GOARCH == "ppc64" || runtime.GOARCH == "ppc64le"

// orDefault is c, or ChaCha20Poly1305 for the zero Cipher.
func (c Cipher) orDefault() Cipher {
	if c == "" {
		return ChaCha20Poly1305
	}
	return c
}

// Check returns an error wrapping ErrUnknownCipher unless c is a cipher this package implements (the zero Cipher is
// not one: Peer.Cipher reads it as ChaCha20Poly1305).
func (c Cipher) Check() error {
	switch c {
	case ChaCha20Poly1305, AES256GCM:
		return nil
	}
	return fmt.Errorf("%w %q (want %q or %q)", ErrUnknownCipher, string(c), ChaCha20Poly1305, AES256GCM)
}

// cipherKeySize is the key size of every Cipher.
const cipherKeySize = 32

// tagSize is the tag size of every Cipher.
const tagSize = 16

// newAEAD returns c keyed with key (cipherKeySize bytes).
func (c Cipher) newAEAD(key []byte) (cipher.AEAD, error) {
	switch c {
	case ChaCha20Poly1305:
		return chacha20poly1305.New(key)
	case AES256GCM:
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	}
	return nil, c.Check()
}
