package utp

import (
	"bytes"
	"slices"
	"testing"

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

func pairKeys(t testing.TB, secret []byte) (dialer, acceptor pathKeys) {
	t.Helper()
	var err error
	dialer, err = derivePathKeys(secret, true, false)
	require.NoError(t, err)
	acceptor, err = derivePathKeys(secret, false, false)
	require.NoError(t, err)
	return dialer, acceptor
}

// Each direction has its own key and path ID, and both sides derive the same pair.
func TestPathKeysPerDirection(t *testing.T) {
	d, a := pairKeys(t, newKey(t))
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
	_, _, ok = d.open(d.recv, slices.Clone(toA))
	require.False(t, ok, "the dialler opens its own datagram with its receive key")
	o, _ := pairKeys(t, newKey(t))
	require.True(t, o.sendID != d.sendID, "two keys give the same path ID")
}

// Any single flipped bit anywhere in a sealed datagram (type, path ID, counter, ciphertext or tag) makes it
// unopenable or unroutable.
func TestSealTamperEveryBit(t *testing.T) {
	d, a := pairKeys(t, newKey(t))
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
	w, _ := pairKeys(t, newKey(t))
	forged := sealCtrl(w, 1234, kindPunch, 0, u64(1))
	copy(forged[1:9], good[1:9]) // the path ID is on the wire for anyone to copy
	_, _, ok = a.open(a.recv, forged)
	require.False(t, ok, "a datagram sealed with another key opened")
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

// BenchmarkSealOpen: sealing and opening one full-size uTP datagram (the cost per packet, each way).
func BenchmarkSealOpen(b *testing.B) {
	d, a := pairKeys(b, make([]byte, 32))
	payload := make([]byte, 1404)
	buf := make([]byte, 0, maxSealed)
	b.SetBytes(int64(len(payload)))
	var counter uint64
	for b.Loop() {
		counter++
		buf = append(buf[:sealedHeader], byte(kindDatagram))
		sealed := d.seal(append(buf, payload...), counter)
		if _, _, ok := a.open(a.recv, sealed); !ok {
			b.Fatal("did not open")
		}
	}
}

// The link's safe datagram size seals into exactly a 1,200-byte UDP payload; the max fits the local MTU and a relay.
func TestDatagramSizes(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, _ := connectPair(t, a, b)
	safe, maxSize := pa.link().DatagramSizes()
	d, _ := pairKeys(t, newKey(t))
	require.Len(t, sealDatagram(d, 1, make([]byte, safe)), 1200, "sealed size of a safe datagram")
	udpMax := min(localMTU(a.LocalAddr())-udpOverhead(false), maxRoutePayload)
	require.Len(t, sealDatagram(d, 1, make([]byte, maxSize)), udpMax, "UDP payload of a max datagram")
	require.True(t, maxSize >= safe, "max %d below safe %d", maxSize, safe)
}
