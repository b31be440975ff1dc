package utp

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// injector wraps a Transport's socket on the receiving side: every tamperEvery-th sealed datagram read is preceded by
// a copy with one random bit flipped, and every replayEvery-th by a datagram read earlier (a replay). Nothing goes
// through the kernel, so the counts are exact.
type injector struct {
	net.PacketConn
	tamperEvery, replayEvery int

	mu       sync.Mutex
	rng      *rand.Rand
	n        int
	pending  []byte // the genuine datagram to return after an injected one
	from     net.Addr
	recent   [][]byte
	tampered atomic.Int64
	replayed atomic.Int64
}

func (j *injector) ReadFrom(b []byte) (int, net.Addr, error) {
	j.mu.Lock()
	if j.pending != nil {
		n := copy(b, j.pending)
		j.pending = nil
		from := j.from
		j.mu.Unlock()
		return n, from, nil
	}
	j.mu.Unlock()
	n, from, err := j.PacketConn.ReadFrom(b)
	if err != nil || n == 0 || b[0] != sealedType {
		return n, from, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.n++
	genuine := slices.Clone(b[:n])
	var inject []byte
	switch {
	case j.tamperEvery > 0 && j.n%j.tamperEvery == 0:
		inject = slices.Clone(genuine)
		bit := j.rng.IntN(8 * len(inject))
		inject[bit/8] ^= 1 << (bit % 8)
		j.tampered.Add(1)
	case j.replayEvery > 0 && j.n%j.replayEvery == 0 && len(j.recent) > 0:
		inject = j.recent[j.rng.IntN(len(j.recent))]
		j.replayed.Add(1)
	}
	if len(j.recent) < 64 {
		j.recent = append(j.recent, genuine)
	} else {
		j.recent[j.rng.IntN(len(j.recent))] = genuine
	}
	if inject == nil {
		return n, from, nil
	}
	j.pending, j.from = genuine, from
	return copy(b, inject), from, nil
}

// Tampered datagrams (one random bit flipped anywhere) and replays of earlier datagrams, injected into both peers'
// receive paths during a transfer, are all dropped and counted, and the transfer arrives byte-exact.
func TestTamperedAndReplayedDatagramsDropped(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	var trs [2]*Transport
	var injs [2]*injector
	for i := range trs {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		injs[i] = &injector{PacketConn: pc, tamperEvery: 7, replayEvery: 11, rng: rand.New(rand.NewPCG(uint64(i), 1))}
		trs[i], err = NewTransport(injs[i], cfg)
		require.NoError(t, err)
		t.Cleanup(func() { trs[i].Close() })
	}
	pa, pb := connectPair(t, trs[0], trs[1])
	before := [2]Stats{trs[0].Stats(), trs[1].Stats()}
	tampered := [2]int64{injs[0].tampered.Load(), injs[1].tampered.Load()}
	replayed := [2]int64{injs[0].replayed.Load(), injs[1].replayed.Load()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := transferVerified(ctx, pa, pb, 4<<20, 64<<10, 3, nil)
	require.NoError(t, err, "transfer")
	require.True(t, res.sent == res.received, "received bytes differ from sent")
	// The injector counts an injection before the Transport sees it, and datagrams still arrive after the transfer:
	// the counts must come to agree (a tampered datagram or a replay let through never would).
	for i, tr := range trs {
		var tam, rep int64
		agree := func() bool {
			after := tr.Stats()
			tam, rep = injs[i].tampered.Load()-tampered[i], injs[i].replayed.Load()-replayed[i]
			dropped := int64(after.Unopened-before[i].Unopened) + int64(after.Stranger-before[i].Stranger)
			return tam == dropped && rep == int64(after.Replayed-before[i].Replayed)
		}
		require.Eventually(t, agree, 5*time.Second, time.Millisecond, "peer %d: injections and drops never agree", i)
		t.Logf("peer %d: injected %d tampered, %d replayed; stats %+v", i, tam, rep, tr.Stats())
		require.True(t, tam >= 5, "too few tampered injections (%d) to mean anything", tam)
		require.True(t, rep >= 5, "too few replay injections (%d) to mean anything", rep)
	}
}

// utpHeader is a plain BEP 29 header, as an attacker who knows the protocol forges it.
func utpHeader(typ byte, connID, seq, ack uint16) []byte {
	h := make([]byte, 20)
	h[0] = typ<<4 | 1
	binary.BigEndian.PutUint16(h[2:], connID)
	binary.BigEndian.PutUint32(h[4:], uint32(time.Now().UnixMicro()))
	binary.BigEndian.PutUint32(h[12:], 1<<20)
	binary.BigEndian.PutUint16(h[16:], seq)
	binary.BigEndian.PutUint16(h[18:], ack)
	return h
}

const (
	stData  = 0
	stReset = 3
)

// attackDuring runs a verified transfer of size bytes from the serving peer (server) to the client and, once a
// quarter has arrived, sends at each peer, from the other peer's real address and port (its own socket), forged uTP
// data packets, forged sealed-looking data packets with the right path ID, and 65,536 uTP resets (every connection
// ID). The transfer must arrive byte-exact with no error on either side.
func attackDuring(t testing.TB, size int64) {
	cfg := fastConfig()
	client, server := listen(t, cfg), listen(t, cfg)
	pc, ps := connectPair(t, client, server)
	var once sync.Once
	sent := make(chan [2]int, 1)
	attack := func() {
		var n [2]int
		for i, side := range []struct {
			from   *Transport
			to     *Transport
			pathID uint64
		}{{client, server, ps.keys.recvID}, {server, client, pc.keys.recvID}} {
			to := side.to.LocalAddr()
			send := func(b []byte) {
				if _, err := side.from.pc.WriteTo(b, to); err == nil {
					n[i]++
				}
			}
			// A forged data packet (the payload an attacker wants delivered) on every connection ID nearby.
			for id := range uint16(64) {
				send(append(utpHeader(stData, id, 2, 1), "GET /.git/config HTTP/1.1\r\n\r\n"...))
			}
			// A forged sealed datagram: right type and path ID, a counter just ahead, a made-up body and tag.
			forged := make([]byte, 200)
			forged[0] = sealedType
			binary.BigEndian.PutUint64(forged[1:], side.pathID)
			binary.BigEndian.PutUint64(forged[9:], uint64(time.Now().UnixNano()))
			send(forged)
			for id := range 1 << 16 {
				send(utpHeader(stReset, uint16(id), uint16(id), 0))
				if id%2048 == 0 {
					time.Sleep(time.Millisecond) // spread over time rather than overflow the socket buffer
				}
			}
		}
		sent <- n
	}
	before := [2]Stats{client.Stats(), server.Stats()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := transferVerified(ctx, ps, pc, size, 64<<10, 5, func(got int64) {
		if got >= size/4 {
			once.Do(func() { go attack() })
		}
	})
	require.NoError(t, err, "transfer under attack")
	require.True(t, res.n == size, "received %d bytes, want %d", res.n, size)
	require.True(t, res.sent == res.received, "SHA-256 of received data %x, sent %x", res.received, res.sent)
	n := <-sent
	for i, tr := range []*Transport{server, client} {
		after := tr.Stats()
		dropped := (after.Stranger - before[1-i].Stranger) + (after.Unopened - before[1-i].Unopened)
		t.Logf("%d datagrams forged at peer %d; it dropped %d (stats %+v)", n[i], i, dropped, after)
		require.True(t, dropped > 0, "dropped %d of %d forged datagrams", dropped, n[i])
		require.True(t, dropped <= uint64(n[i]), "dropped %d of %d forged datagrams", dropped, n[i])
	}
	for _, p := range []*Path{pc, ps} {
		require.NoError(t, p.Err(), "path after the attack")
	}
	c1, c2 := openPair(t, pc, ps)
	exchange(t, c1, c2, 10<<10)
}

// A forged data packet and 65,536 spoofed resets with the right addresses leave a transfer byte-exact.
// BenchmarkTransferUnderAttack runs the same with 32 MiB.
func TestForgedDataAndSpoofedResets(t *testing.T) {
	t.Parallel()
	attackDuring(t, 8<<20)
}

func BenchmarkTransferUnderAttack(b *testing.B) {
	for range b.N {
		attackDuring(b, 32<<20)
	}
}

// Datagrams from a stranger (plain uTP, garbage, STUN-like but malformed, sealed-looking with unknown path IDs)
// are counted and dropped; the path is unaffected.
func TestStrangerDatagrams(t *testing.T) {
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	pa, pb := connectPair(t, a, b)
	stranger, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer stranger.Close()
	unknown := make([]byte, 64)
	unknown[0] = sealedType
	junk := [][]byte{
		utpHeader(4, 1, 1, 0),       // SYN
		utpHeader(stReset, 0, 0, 0), // reset
		append(utpHeader(stData, 1, 2, 1), "data"...),
		{0x00, 0x01, 0x00, 0x00, 1, 2}, // STUN-like, no cookie
		{sealedType, 1, 2},             // sealed type, too short
		unknown,                        // sealed type, unknown path ID
		{0xD7, 1, 1, 0},                // the old control magic
		{},
	}
	before := b.Stats()
	for _, j := range junk {
		_, err := stranger.WriteTo(j, b.LocalAddr())
		require.NoError(t, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Stranger-before.Stranger < uint64(len(junk)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.Equal(t, uint64(len(junk)), b.Stats().Stranger-before.Stranger, "stranger datagrams counted")
	require.Equal(t, before.Unopened, b.Stats().Unopened, "unopened")
	c1, c2 := openPair(t, pa, pb)
	exchange(t, c1, c2, 1000)
}

// Peers with different keys never meet: their datagrams go to path IDs the other does not know.
func TestWrongKeyNeverConnects(t *testing.T) {
	t.Parallel()
	a, b := listen(t, fastConfig()), listen(t, fastConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	errc := make(chan error, 1)
	keyB := newKey(t) // made here: newKey asserts, which only the test goroutine may
	go func() {
		_, err := b.Connect(ctx, Peer{Key: keyB, Candidates: a.HostCandidates()})
		errc <- err
	}()
	_, err := a.Connect(ctx, Peer{Key: newKey(t), Candidates: b.HostCandidates(), Dialer: true})
	require.ErrorIs(t, err, ErrPunchFailed)
	require.ErrorIs(t, <-errc, ErrPunchFailed)
	require.True(t, a.Stats().Stranger > 0, "no punch counted as a stranger's at a: %+v", a.Stats())
	require.True(t, b.Stats().Stranger > 0, "no punch counted as a stranger's at b: %+v", b.Stats())
}
