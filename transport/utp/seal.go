package utp

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Every datagram between two peers (punches, probes, control packets and every uTP packet) is sealed:
//
//	0   1  type 0xD8: not STUN (0x00-0x03), TURN ChannelData (0x40-0x7F), DTLS or a uTP header (0x?1)
//	1   8  receiver path ID: HKDF of the session key and the direction, so the receiving Transport finds the path
//	       before it tries a key, and several paths share one socket
//	9   8  counter (big endian): strictly increasing per sender; the nonce, and the replay window's index
//	17  n  ChaCha20-Poly1305 of the plaintext with the sender's direction key, nonce 0^32 || counter, the 17
//	       header bytes as associated data; n = plaintext + 16-byte tag
//
// Each direction (dialler to acceptor, acceptor to dialler) has its own key and path ID, both derived by HKDF-SHA256
// from Peer.Key. The keys live in the path and die with it; a datagram that does not open, or whose counter was
// seen before or is older than the replay window, is dropped and counted before any uTP code sees it.
const (
	sealedType     = 0xD8
	sealedHeader   = 17
	sealedOverhead = sealedHeader + chacha20poly1305.Overhead
)

// pathKeys are one path's sealing state: the AEADs (safe for concurrent use) and path IDs of both directions.
type pathKeys struct {
	send, recv     cipher.AEAD
	sendID, recvID uint64 // the peer's receiver ID (ours to write) and ours (the peer writes it)
	noSeal         bool   // test-only: header and counters as usual, payload in clear with a zero tag
}

// derivePathKeys turns the session secret into per-direction keys and path IDs. Both sides agree on which
// direction is which through Peer.Dialer.
func derivePathKeys(secret []byte, dialer bool, noSeal bool) (pathKeys, error) {
	const (
		toAcceptor = "dialler to acceptor"
		toDialler  = "acceptor to dialler"
	)
	out, in := toAcceptor, toDialler
	if !dialer {
		out, in = in, out
	}
	derive := func(what, dir string, n int) ([]byte, error) {
		return hkdf.Key(sha256.New, secret, nil, "p2phttp path v1 "+what+" "+dir, n)
	}
	var k pathKeys
	k.noSeal = noSeal
	for _, d := range []struct {
		dir  string
		aead *cipher.AEAD
		id   *uint64
	}{{out, &k.send, &k.sendID}, {in, &k.recv, &k.recvID}} {
		key, err := derive("key", d.dir, chacha20poly1305.KeySize)
		if err != nil {
			return pathKeys{}, err
		}
		if *d.aead, err = chacha20poly1305.New(key); err != nil {
			return pathKeys{}, err
		}
		clear(key)
		id, err := derive("id", d.dir, 8)
		if err != nil {
			return pathKeys{}, err
		}
		*d.id = binary.BigEndian.Uint64(id)
	}
	if k.sendID == k.recvID {
		return pathKeys{}, fmt.Errorf("utp: derived path IDs collide")
	}
	return k, nil
}

func nonce(counter uint64) []byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(n[4:], counter)
	return n[:]
}

// seal turns buf, which holds the plaintext at buf[sealedHeader:], into a sealed datagram for the peer, in place;
// buf must have room for the tag (cap >= len+16).
func (k *pathKeys) seal(buf []byte, counter uint64) []byte {
	buf[0] = sealedType
	binary.BigEndian.PutUint64(buf[1:9], k.sendID)
	binary.BigEndian.PutUint64(buf[9:17], counter)
	if k.noSeal {
		return append(buf, make([]byte, chacha20poly1305.Overhead)...)
	}
	return k.send.Seal(buf[:sealedHeader], nonce(counter), buf[sealedHeader:], buf[:sealedHeader])
}

// sealedID returns the receiver path ID of a datagram framed like a sealed one.
func sealedID(b []byte) (uint64, bool) {
	if len(b) < sealedOverhead+1 || b[0] != sealedType {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[1:9]), true
}

// open authenticates and decrypts b (a datagram for our receiver ID) in place with aead, returning its counter and
// plaintext.
func (k *pathKeys) open(aead cipher.AEAD, b []byte) (counter uint64, plain []byte, ok bool) {
	if len(b) < sealedOverhead+1 {
		return 0, nil, false
	}
	counter = binary.BigEndian.Uint64(b[9:17])
	if k.noSeal {
		return counter, b[sealedHeader : len(b)-chacha20poly1305.Overhead], true
	}
	plain, err := aead.Open(b[sealedHeader:sealedHeader], nonce(counter), b[sealedHeader:], b[:sealedHeader])
	return counter, plain, err == nil
}

// replayWindow accepts each counter at most once, and none older than the newest minus its width (RFC 6479 style).
// Its width covers the reordering of a fast path: thousands of datagrams may be in flight.
type replayWindow struct {
	top  uint64
	bits [replayWords]uint64
}

// The width is one word less than the bitmap, so the word of the oldest counter in the window is never the word a
// new top has just cleared.
const (
	replayWords = 64
	replayWidth = (replayWords - 1) * 64
)

// accept reports whether counter is fresh, and whether it is the newest so far, and records it.
func (w *replayWindow) accept(counter uint64) (fresh, newest bool) {
	if counter == 0 {
		return false, false
	}
	if counter > w.top {
		if counter-w.top >= replayWidth {
			w.bits = [replayWords]uint64{}
		} else {
			for i := w.top + 1; i <= counter && i%64 != 0; i++ {
				w.bits[(i/64)%replayWords] &^= 1 << (i % 64)
			}
			// Whole words beyond the top's are cleared at once.
			for i := (w.top/64 + 1) * 64; i <= counter; i += 64 {
				w.bits[(i/64)%replayWords] = 0
			}
		}
		w.top = counter
		newest = true
	} else if w.top-counter >= replayWidth {
		return false, false
	}
	word, bit := (counter/64)%replayWords, uint64(1)<<(counter%64)
	if w.bits[word]&bit != 0 {
		return false, false
	}
	w.bits[word] |= bit
	return true, newest
}
