package utp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sealCtrl seals a control packet as the side whose keys are k would.
func sealCtrl(k pathKeys, counter uint64, kind ctrlKind, flags byte, body []byte) []byte {
	buf := append(make([]byte, sealedHeader, sealedHeader+2+len(body)+16), byte(kind), flags)
	return k.seal(append(buf, body...), counter)
}

// sealDatagram seals an engine datagram as the side whose keys are k would.
func sealDatagram(k pathKeys, counter uint64, b []byte) []byte {
	buf := append(make([]byte, sealedHeader, sealedHeader+1+len(b)+16), byte(kindDatagram))
	return k.seal(append(buf, b...), counter)
}

// openCtrl opens a copy of b with k (the receiving side's keys) and parses it as a control packet.
func openCtrl(k pathKeys, b []byte) (ctrlPacket, bool) {
	if id, ok := sealedID(b); !ok || id != k.recvID {
		return ctrlPacket{}, false
	}
	_, plain, ok := k.open(k.recv, slices.Clone(b))
	if !ok {
		return ctrlPacket{}, false
	}
	c, err := parseCtrl(plain)
	return c, err == nil
}

func pairKeys(t testing.TB, secret []byte, c Cipher) (dialer, acceptor pathKeys) {
	t.Helper()
	var err error
	dialer, err = derivePathKeys(secret, true, c, false)
	require.NoError(t, err)
	acceptor, err = derivePathKeys(secret, false, c, false)
	require.NoError(t, err)
	return dialer, acceptor
}

// allCiphers are the ciphers a path can use, whatever this machine prefers.
var allCiphers = []Cipher{ChaCha20Poly1305, AES256GCM}

// Each direction has its own key and path ID, and both sides derive the same pair, with either cipher.
func TestPathKeysPerDirection(t *testing.T) {
	for _, c := range allCiphers {
		t.Run(string(c), func(t *testing.T) {
			d, a := pairKeys(t, newKey(t), c)
			require.Equal(t, c, d.cipher)
			require.Equal(t, a.recvID, d.sendID, "dialler's send ID")
			require.Equal(t, a.sendID, d.recvID, "acceptor's send ID")
			require.True(t, d.sendID != d.recvID, "both directions share a path ID")
			plain := []byte("same plaintext, same counter")
			toA := sealDatagram(d, 5, plain)
			toD := sealDatagram(a, 5, plain)
			require.False(t, bytes.Equal(toA[sealedHeader:], toD[sealedHeader:]), "both directions seal alike: one key for both")
			_, got, ok := a.open(a.recv, slices.Clone(toA))
			require.True(t, ok, "the acceptor cannot open the dialler's datagram")
			require.True(t, bytes.Equal(got[1:], plain), "the acceptor opens the dialler's datagram to other bytes")
			_, got, ok = d.open(d.recv, slices.Clone(toD))
			require.True(t, ok, "the dialler cannot open the acceptor's datagram")
			require.True(t, bytes.Equal(got[1:], plain), "the dialler opens the acceptor's datagram to other bytes")
			_, _, ok = d.open(d.recv, slices.Clone(toA))
			require.False(t, ok, "the dialler opens its own datagram with its receive key")
			o, _ := pairKeys(t, newKey(t), c)
			require.True(t, o.sendID != d.sendID, "two keys give the same path ID")
		})
	}
}

// One session key gives each cipher keys of its own: a datagram sealed under one cipher opens under no other, and
// the same plaintext under the same counter seals to unrelated bytes (no key/nonce pair is shared across ciphers).
func TestCiphersKeyedApart(t *testing.T) {
	secret := newKey(t)
	cd, ca := pairKeys(t, secret, ChaCha20Poly1305)
	ad, aa := pairKeys(t, secret, AES256GCM)
	plain := bytes.Repeat([]byte{0x5a}, 64)
	byChaCha, byAES := sealDatagram(cd, 77, plain), sealDatagram(ad, 77, plain)
	require.Equal(t, byChaCha[:sealedHeader], byAES[:sealedHeader], "path IDs and counters do not depend on the cipher")
	require.False(t, bytes.Equal(byChaCha[sealedHeader:], byAES[sealedHeader:]), "the two ciphers sealed alike")
	_, _, ok := aa.open(aa.recv, slices.Clone(byChaCha))
	require.False(t, ok, "AES-GCM keys opened a ChaCha20-Poly1305 datagram")
	_, _, ok = ca.open(ca.recv, slices.Clone(byAES))
	require.False(t, ok, "ChaCha20-Poly1305 keys opened an AES-GCM datagram")
	_, got, ok := aa.open(aa.recv, slices.Clone(byAES))
	require.True(t, ok, "AES-GCM datagram did not open")
	require.True(t, bytes.Equal(got[1:], plain), "AES-GCM datagram opened to other bytes")
}

// The nonce is the last 4 bytes of the receiver path ID and the counter: what the header carries, and a value
// that never repeats under one direction's key.
func TestNonceIsInTheHeader(t *testing.T) {
	for _, c := range allCiphers {
		d, a := pairKeys(t, newKey(t), c)
		sealed := sealDatagram(d, 0x0102030405060708, []byte("x"))
		var want [12]byte
		binary.BigEndian.PutUint32(want[:4], uint32(a.recvID))
		binary.BigEndian.PutUint64(want[4:], 0x0102030405060708)
		require.Equal(t, want[:], sealed[nonceAt:sealedHeader], "%s nonce", c)
		// Sealing by hand with that nonce gives the same bytes: the header really is the nonce.
		aead, err := c.newAEAD(make([]byte, cipherKeySize))
		require.NoError(t, err)
		require.Equal(t, 12, aead.NonceSize(), "%s nonce size", c)
		require.Equal(t, tagSize, aead.Overhead(), "%s tag size", c)
		_, plain, ok := a.open(a.recv, slices.Clone(sealed))
		require.True(t, ok)
		resealed := d.send.Seal(slices.Clone(sealed[:sealedHeader]), want[:], plain, sealed[:sealedHeader])
		require.Equal(t, sealed, resealed, "%s: sealed with another nonce than the header's", c)
	}
}

// Any single flipped bit anywhere in a sealed datagram (type, path ID, counter, ciphertext or tag) makes it
// unopenable or unroutable.
func TestSealTamperEveryBit(t *testing.T) {
	for _, c := range allCiphers {
		t.Run(string(c), func(t *testing.T) {
			d, a := pairKeys(t, newKey(t), c)
			good := sealCtrl(d, 1234, kindPunchReply, flagConfirmed, make([]byte, 26))
			for bit := range len(good) * 8 {
				b := slices.Clone(good)
				b[bit/8] ^= 1 << (bit % 8)
				if id, ok := sealedID(b); !ok || id != a.recvID {
					continue // dropped by the demultiplexer as a stranger's
				}
				_, _, ok := a.open(a.recv, b)
				require.False(t, ok, "datagram with bit %d flipped opened", bit)
			}
			_, _, ok := a.open(a.recv, slices.Clone(good))
			require.True(t, ok, "the untouched datagram did not open")
			for n := range len(good) {
				_, _, ok := a.open(a.recv, slices.Clone(good[:n]))
				require.False(t, ok, "datagram truncated to %d bytes opened", n)
			}
			w, _ := pairKeys(t, newKey(t), c)
			forged := sealCtrl(w, 1234, kindPunch, 0, u64(1))
			copy(forged[1:9], good[1:9]) // the path ID is on the wire for anyone to copy
			_, _, ok = a.open(a.recv, forged)
			require.False(t, ok, "a datagram sealed with another key opened")
		})
	}
}

// Sealing and opening a datagram, with either cipher or none, allocate nothing: both work in place in the
// datagram's buffer, nonce included.
func TestSealOpenAllocateNothing(t *testing.T) {
	for _, c := range allCiphers {
		for _, noSeal := range []bool{false, true} {
			secret := newKey(t)
			d, err := derivePathKeys(secret, true, c, noSeal)
			require.NoError(t, err)
			a, err := derivePathKeys(secret, false, c, noSeal)
			require.NoError(t, err)
			buf := make([]byte, 0, maxSealed)
			payload := make([]byte, 1400)
			var counter uint64
			allocs := testing.AllocsPerRun(100, func() {
				counter++
				buf = append(append(buf[:sealedHeader], byte(kindDatagram)), payload...)
				if _, _, ok := a.open(a.recv, d.seal(buf, counter)); !ok {
					t.Fatal("did not open")
				}
			})
			require.Zero(t, allocs, "%s (noSeal %v): allocations per seal and open", c, noSeal)
		}
	}
}

// Ciphers puts AES-256-GCM first exactly when the CPU has AES-GCM instructions, and always offers
// ChaCha20-Poly1305 (the one every peer supports), last; every cipher offered is one a path can use.
func TestCiphers(t *testing.T) {
	cs := Ciphers()
	require.NotEmpty(t, cs)
	require.Equal(t, ChaCha20Poly1305, cs[len(cs)-1], "ChaCha20-Poly1305 is the last resort")
	require.Equal(t, hasAESGCMHardware, cs[0] == AES256GCM, "AES-256-GCM first exactly with hardware support")
	for _, c := range cs {
		require.NoError(t, c.Check())
	}
	cs[0] = "changed"
	require.NotEqual(t, Cipher("changed"), Ciphers()[0], "Ciphers returned a shared slice")
}

// An unknown cipher is a clear error, never a panic, whether it reaches the key derivation or Connect.
func TestUnknownCipher(t *testing.T) {
	for _, c := range []Cipher{"rot13", "AES-256-GCM", "chacha20-poly1305 "} {
		_, err := derivePathKeys(newKey(t), true, c, false)
		require.ErrorIs(t, err, ErrUnknownCipher, "%q", c)
		_, err = c.newAEAD(make([]byte, cipherKeySize))
		require.ErrorIs(t, err, ErrUnknownCipher, "%q", c)
	}
	tr := listen(t, fastConfig())
	_, err := tr.Connect(context.Background(), Peer{Key: newKey(t), Cipher: "rot13",
		Candidates: []Candidate{{Kind: CandidateHost, Addr: netip.MustParseAddrPort("127.0.0.1:9")}}})
	require.ErrorIs(t, err, ErrUnknownCipher)
	require.Equal(t, ChaCha20Poly1305, Cipher("").orDefault(), "the zero Cipher")
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	for _, c := range []uint64{1, 2, 5, 4, 3, 100, 2000, 70} {
		fresh, _ := w.accept(c)
		require.True(t, fresh, "fresh counter %d refused", c)
	}
	for _, c := range []uint64{0, 1, 5, 100, 2000, 70} {
		fresh, _ := w.accept(c)
		require.False(t, fresh, "replayed counter %d accepted", c)
	}
	fresh, newest := w.accept(5000)
	require.True(t, fresh, "jump refused")
	require.True(t, newest, "jump not the newest")
	fresh, newest = w.accept(4999)
	require.True(t, fresh, "reordered counter refused")
	require.False(t, newest, "reordered counter newest")
	fresh, _ = w.accept(5000 - replayWidth)
	require.False(t, fresh, "counter behind the window accepted")
	fresh, _ = w.accept(5000 - replayWidth + 1)
	require.True(t, fresh, "oldest counter in the window refused")
	require.True(t, replayWidth >= 1024, "window of %d counters is too narrow for a fast path's reordering", replayWidth)
}

// The window against a model: a random walk of counters, each accepted exactly when it is new and within the width.
func TestReplayWindowModel(t *testing.T) {
	var w replayWindow
	seen := map[uint64]bool{}
	var top uint64
	x := uint64(1)
	for i := range 200000 {
		x = x*6364136223846793005 + 1442695040888963407
		var c uint64
		switch r := x >> 61; {
		case r < 4: // near the top, either side
			c = top + 1 + (x>>20)%64
			if r < 2 && top > 64 {
				c = top - (x>>20)%uint64(replayWidth+200)
			}
		case r < 6: // an old one again
			c = top - (x>>20)%uint64(replayWidth+200)
		default: // a jump
			c = top + (x>>20)%(3*replayWidth)
		}
		if c == 0 || c > 1<<62 {
			continue
		}
		want := !seen[c] && (c > top || top-c < replayWidth)
		got, newest := w.accept(c)
		require.Equal(t, want, got, "step %d: counter %d (top %d): accepted", i, c, top)
		require.Equal(t, want && c > top, newest, "step %d: counter %d (top %d): newest", i, c, top)
		if got {
			seen[c] = true
			top = max(top, c)
		}
	}
}

// BenchmarkSealOpen: sealing and opening one full-size uTP datagram (the cost per packet, each way), per cipher.
func BenchmarkSealOpen(b *testing.B) {
	for _, c := range allCiphers {
		b.Run(string(c), func(b *testing.B) {
			d, a := pairKeys(b, make([]byte, 32), c)
			payload := make([]byte, 1404)
			buf := make([]byte, 0, maxSealed)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			var counter uint64
			for b.Loop() {
				counter++
				buf = append(buf[:sealedHeader], byte(kindDatagram))
				sealed := d.seal(append(buf, payload...), counter)
				if _, _, ok := a.open(a.recv, sealed); !ok {
					b.Fatal("did not open")
				}
			}
		})
	}
}

// The link's safe datagram size seals into exactly a 1,200-byte UDP payload; the max fits the local MTU and a relay.
func TestDatagramSizes(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, _ := connectPair(t, a, b)
	safe, maxSize := pa.link().DatagramSizes()
	d, _ := pairKeys(t, newKey(t), ChaCha20Poly1305)
	require.Len(t, sealDatagram(d, 1, make([]byte, safe)), 1200, "sealed size of a safe datagram")
	udpMax := min(localMTU(a.LocalAddr())-udpOverhead(false), maxRoutePayload)
	require.Len(t, sealDatagram(d, 1, make([]byte, maxSize)), udpMax, "UDP payload of a max datagram")
	require.True(t, maxSize >= safe, "max %d below safe %d", maxSize, safe)
}

// A path seals with the cipher both sides name, either one, and carries streams both ways; two sides that name
// different ciphers never open each other's datagrams, so the path never forms.
func TestPathCipher(t *testing.T) {
	connect := func(t *testing.T, ca, cb Cipher, timeout time.Duration) (pa, pb *Path, a, b *Transport, errA, errB error) {
		a, b = listen(t, fastConfig()), listen(t, fastConfig())
		key := newKey(t)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			pb, errB = b.Connect(ctx, Peer{Key: key, Candidates: a.HostCandidates(), Cipher: cb})
		}()
		pa, errA = a.Connect(ctx, Peer{Key: key, Candidates: b.HostCandidates(), Dialer: true, Cipher: ca})
		<-done
		for _, p := range []*Path{pa, pb} {
			if p != nil {
				t.Cleanup(func() { p.Close() })
			}
		}
		return pa, pb, a, b, errA, errB
	}
	for _, c := range allCiphers {
		t.Run(string(c), func(t *testing.T) {
			pa, pb, _, _, errA, errB := connect(t, c, c, 10*time.Second)
			require.NoError(t, errA)
			require.NoError(t, errB)
			require.Equal(t, c, pa.Cipher())
			require.Equal(t, c, pb.Cipher())
			c1, c2 := openPair(t, pa, pb)
			exchange(t, c1, c2, 200<<10)
			c3, c4 := openPair(t, pb, pa)
			exchange(t, c3, c4, 100<<10)
		})
	}
	t.Run("mismatch", func(t *testing.T) {
		_, _, a, b, errA, errB := connect(t, AES256GCM, ChaCha20Poly1305, time.Second)
		require.ErrorIs(t, errA, ErrPunchFailed)
		require.ErrorIs(t, errB, ErrPunchFailed)
		require.NotZero(t, a.Stats().Unopened, "the dialler counted no unopened datagram")
		require.NotZero(t, b.Stats().Unopened, "the acceptor counted no unopened datagram")
	})
	t.Run("zero value", func(t *testing.T) {
		pa, pb, _, _, errA, errB := connect(t, "", ChaCha20Poly1305, 10*time.Second)
		require.NoError(t, errA)
		require.NoError(t, errB)
		require.Equal(t, ChaCha20Poly1305, pa.Cipher())
		require.Equal(t, ChaCha20Poly1305, pb.Cipher())
	})
}
