package utp

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Every datagram between two peers (punches, probes, control packets and every uTP packet) is sealed:
//
//	0   1  type 0xD8: not STUN (0x00-0x03), TURN ChannelData (0x40-0x7F), DTLS or a uTP header (0x?1)
//	1   8  receiver path ID: HKDF of the session key and the direction, so the receiving Transport finds the path
//	       before it tries a key, and several paths share one socket
//	9   8  counter (big endian): strictly increasing per sender; the nonce, and the replay window's index
//	17  n  the path's Cipher (ChaCha20-Poly1305 or AES-256-GCM) sealing the plaintext with the sender's direction
//	       key, the 17 header bytes as associated data; n = plaintext + 16-byte tag
//
// The 12-byte nonce is bytes 5 to 17 of the header: the last 4 bytes of the receiver path ID, then the counter. It
// is built in the datagram itself, so sealing and opening allocate nothing; it never repeats under a key, since
// each key seals one direction (whose path ID is fixed) and the counter only grows.
//
// Each direction (dialler to acceptor, acceptor to dialler) has its own key and path ID, both derived by HKDF-SHA256
// from Peer.Key; the key's label names the cipher too, so the same session key never keys two ciphers alike. The
// keys live in the path and die with it; a datagram that does not open, or whose counter was seen before or is
// older than the replay window, is dropped and counted before any uTP code sees it.
const (
	sealedType     = 0xD8
	sealedHeader   = 17
	sealedOverhead = sealedHeader + tagSize
	nonceAt        = sealedHeader - 12 // where the nonce starts in the header
)

// pathKeys are one path's sealing state: the AEADs (safe for concurrent use) and path IDs of both directions.
type pathKeys struct {
	cipher         Cipher
	send, recv     cipher.AEAD
	sendID, recvID uint64 // the peer's receiver ID (ours to write) and ours (the peer writes it)
	noSeal         bool   // test-only: header and counters as usual, payload in clear with a zero tag
}

// derivePathKeys turns the session secret into per-direction keys (for c) and path IDs. Both sides agree on which
// direction is which through Peer.Dialer.
func derivePathKeys(secret []byte, dialer bool, c Cipher, noSeal bool) (pathKeys, error) {
	if err := c.Check(); err != nil {
		return pathKeys{}, err
	}
	const (
		toAcceptor = "dialler to acceptor"
		toDialler  = "acceptor to dialler"
	)
	out, in := toAcceptor, toDialler
	if !dialer {
		out, in = in, out
	}
	derive := func(what, dir string, n int) ([]byte, error) {
		return hkdf.Key(sha256.New, secret, nil, "p2phttp path v2 "+what+" "+dir, n)
	}
	k := pathKeys{cipher: c, noSeal: noSeal}
	for _, d := range []struct {
		dir  string
		aead *cipher.AEAD
		id   *uint64
	}{{out, &k.send, &k.sendID}, {in, &k.recv, &k.recvID}} {
		key, err := derive(string(c)+" key", d.dir, cipherKeySize)
		if err != nil {
			return pathKeys{}, err
		}
		*d.aead, err = c.newAEAD(key)
		clear(key)
		if err != nil {
			return pathKeys{}, err
		}
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

// zeroTag is the tag of a datagram "sealed" with noSeal.
var zeroTag [tagSize]byte

// seal turns buf, which holds the plaintext at buf[sealedHeader:], into a sealed datagram for the peer, in place;
// buf must have room for the tag (cap >= len+16) or the tag costs an allocation.
func (k *pathKeys) seal(buf []byte, counter uint64) []byte {
	buf[0] = sealedType
	binary.BigEndian.PutUint64(buf[1:9], k.sendID)
	binary.BigEndian.PutUint64(buf[9:17], counter)
	if k.noSeal {
		return append(buf, zeroTag[:]...)
	}
	return k.send.Seal(buf[:sealedHeader], buf[nonceAt:sealedHeader], buf[sealedHeader:], buf[:sealedHeader])
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
		return counter, b[sealedHeader : len(b)-tagSize], true
	}
	plain, err := aead.Open(b[sealedHeader:sealedHeader], b[nonceAt:sealedHeader], b[sealedHeader:], b[:sealedHeader])
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
