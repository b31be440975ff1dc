package utp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/netem"
	"github.com/stretchr/testify/require"
)

// impairedPair is two Transports on loopback, each on a netem-wrapped socket, connected by a Path.
type impairedPair struct {
	dialer, acceptor     *Path
	dialerNet, acceptNet *netem.Conn
	dialerTr, acceptorTr *Transport
}

// newImpairedPair connects two transports whose sockets are impaired as dialerNet and acceptorNet say; a nil
// config leaves that side's socket unwrapped (and its *netem.Conn nil).
func newImpairedPair(tb testing.TB, cfg Config, dialerNet, acceptorNet *netem.Config) *impairedPair {
	tb.Helper()
	return newImpairedPairCipher(tb, cfg, ChaCha20Poly1305, dialerNet, acceptorNet)
}

// newImpairedPairCipher is newImpairedPair with a path sealed by c.
func newImpairedPairCipher(tb testing.TB, cfg Config, c Cipher, dialerNet, acceptorNet *netem.Config) *impairedPair {
	tb.Helper()
	p := &impairedPair{}
	open := func(nc *netem.Config) (*netem.Conn, *Transport) {
		if nc == nil {
			tr, err := Listen("udp4", "127.0.0.1:0", cfg)
			require.NoError(tb, err)
			tb.Cleanup(func() { tr.Close() })
			return nil, tr
		}
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(tb, err)
		w := netem.Wrap(pc, *nc)
		tr, err := NewTransport(w, cfg)
		if err != nil {
			w.Close()
		}
		require.NoError(tb, err)
		tb.Cleanup(func() { tr.Close() })
		return w, tr
	}
	p.dialerNet, p.dialerTr = open(dialerNet)
	p.acceptNet, p.acceptorTr = open(acceptorNet)

	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	cand := func(tr *Transport) []Candidate {
		return []Candidate{{Kind: CandidateHost, Addr: netip.MustParseAddrPort(tr.LocalAddr().String())}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.dialer, errA = p.dialerTr.Connect(ctx, Peer{Key: key, Candidates: cand(p.acceptorTr), Dialer: true, Cipher: c})
	}()
	go func() {
		defer wg.Done()
		p.acceptor, errB = p.acceptorTr.Connect(ctx, Peer{Key: key, Candidates: cand(p.dialerTr), Cipher: c})
	}()
	wg.Wait()
	require.NoError(tb, errA, "Connect: dialer (acceptor: %v)", errB)
	require.NoError(tb, errB, "Connect: acceptor (dialer: %v)", errA)
	tb.Cleanup(func() {
		p.dialer.Close()
		p.acceptor.Close()
	})
	return p
}

// transferResult is what one verified transfer measured.
type transferResult struct {
	elapsed        time.Duration
	sent, received [sha256.Size]byte
	n              int64
}

// transferVerified opens a stream on from, writes size pseudo-random bytes (seeded) in chunks of chunk bytes,
// closes, and reads them all on to's side; both sides hash what they saw. onProgress, if set, is called by the
// reader after each read with the bytes received so far.
func transferVerified(ctx context.Context, from, to *Path, size int64, chunk int, seed uint64, onProgress func(int64)) (transferResult, error) {
	var res transferResult
	start := time.Now()
	accepted := make(chan net.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		c, err := to.AcceptStream(ctx)
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- c
	}()
	w, err := from.OpenStream(ctx)
	if err != nil {
		return res, fmt.Errorf("OpenStream: %w", err)
	}
	defer w.Close()
	if dl, ok := ctx.Deadline(); ok {
		w.SetDeadline(dl)
	}
	type written struct {
		sum [sha256.Size]byte
		err error
	}
	wrote := make(chan written, 1)
	go func() {
		var out written
		defer func() { wrote <- out }()
		h := sha256.New()
		src := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
		buf := make([]byte, chunk)
		for left := size; left > 0; {
			n := int(min(int64(chunk), left))
			src.Read(buf[:n])
			h.Write(buf[:n])
			if _, err := w.Write(buf[:n]); err != nil {
				out.err = fmt.Errorf("write after %d bytes: %w", size-left, err)
				return
			}
			left -= int64(n)
		}
		h.Sum(out.sum[:0])
		out.err = w.Close()
	}()
	var r net.Conn
	select {
	case r = <-accepted:
	case err := <-acceptErr:
		return res, fmt.Errorf("AcceptStream: %w", err)
	}
	defer r.Close()
	if dl, ok := ctx.Deadline(); ok {
		r.SetDeadline(dl)
	}
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		h.Write(buf[:n])
		res.n += int64(n)
		if onProgress != nil && n > 0 {
			onProgress(res.n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("read after %d bytes: %w", res.n, err)
		}
	}
	res.elapsed = time.Since(start)
	h.Sum(res.received[:0])
	out := <-wrote
	res.sent = out.sum
	return res, out.err
}

// checkTransfer runs a verified transfer of size bytes and fails the test unless every byte arrived intact.
func checkTransfer(t *testing.T, p *impairedPair, size int64, onProgress func(int64)) transferResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := transferVerified(ctx, p.dialer, p.acceptor, size, 64<<10, 1, onProgress)
	require.NoError(t, err, "transfer (received %d of %d bytes)", res.n, size)
	require.Equal(t, size, res.n, "bytes received")
	require.True(t, bytes.Equal(res.sent[:], res.received[:]), "SHA-256 of received data %x, sent %x", res.received, res.sent)
	t.Logf("%d MiB byte-exact in %v (%.1f MB/s)", size>>20, res.elapsed.Round(time.Millisecond), float64(size)/res.elapsed.Seconds()/1e6)
	for _, side := range []struct {
		name string
		c    *netem.Conn
	}{{"dialer", p.dialerNet}, {"acceptor", p.acceptNet}} {
		if side.c != nil {
			t.Logf("%s sent %+v", side.name, side.c.OutStats())
		}
	}
	return res
}

const impairedTransferSize = 64 << 20

func TestTransferUnderLoss(t *testing.T) {
	t.Parallel()
	// 5% random loss in each direction, data and acknowledgements alike.
	lossy := func(seed uint64) *netem.Config {
		return &netem.Config{Out: netem.Impairment{Loss: 0.05}, Seed: seed}
	}
	p := newImpairedPair(t, Config{}, lossy(1), lossy(2))
	checkTransfer(t, p, impairedTransferSize, nil)
	st := p.dialerNet.OutStats()
	require.NotZero(t, st.Lost, "no packet was lost: %+v", st)
}

func TestTransferAtHighRTT(t *testing.T) {
	t.Parallel()
	// 100 ms RTT: 50 ms each way, with a little jitter.
	delayed := func(seed uint64) *netem.Config {
		return &netem.Config{Out: netem.Impairment{Delay: 50 * time.Millisecond, Jitter: 2 * time.Millisecond}, Seed: seed}
	}
	p := newImpairedPair(t, Config{}, delayed(3), delayed(4))
	checkTransfer(t, p, impairedTransferSize, nil)
	require.GreaterOrEqual(t, p.dialer.RTT(), 100*time.Millisecond, "path RTT, want at least the emulated 100 ms")
}

func TestTransferSurvivesOutage(t *testing.T) {
	t.Parallel()
	const outage = 5 * time.Second
	delayed := func(seed uint64) *netem.Config {
		return &netem.Config{Out: netem.Impairment{Delay: 5 * time.Millisecond}, Seed: seed}
	}
	p := newImpairedPair(t, Config{}, delayed(5), delayed(6))
	var fired atomic.Bool
	var before netem.Stats
	checkTransfer(t, p, impairedTransferSize, func(got int64) {
		if got >= impairedTransferSize/2 && fired.CompareAndSwap(false, true) {
			before = p.dialerNet.OutStats()
			p.dialerNet.Outage(outage) // both directions at the dialer: nothing gets through
		}
	})
	require.True(t, fired.Load(), "the outage never started")
	require.NotZero(t, p.dialerNet.OutStats().OutageDrops-before.OutageDrops, "the outage dropped nothing")
}

func TestTransferThroughBottleneck(t *testing.T) {
	t.Parallel()
	// A 20 Mbit/s uplink with a 64 KB queue and a 40 ms RTT, from a cold start. A sender that ignores the queue
	// loses about half its packets there; congestion control must keep it from overflowing. The bound is loose:
	// slow start overshoots for about an RTT before the queue shows.
	const size = 8 << 20
	up := netem.Impairment{Rate: bottleneckRate, QueueBytes: 64 << 10, Delay: 20 * time.Millisecond}
	down := netem.Impairment{Delay: 20 * time.Millisecond}
	p := newImpairedPair(t, Config{}, &netem.Config{Out: up, In: down, Seed: 7}, nil)
	checkTransfer(t, p, size, nil)
	st := p.dialerNet.OutStats()
	share := float64(st.QueueDrops) / float64(st.Offered)
	require.LessOrEqual(t, share, 0.10, "%.1f%% of packets dropped at the bottleneck queue, want under 10%%", 100*share)
}

func TestTransferReorderedAndDuplicated(t *testing.T) {
	t.Parallel()
	// 2% of packets held back 5 ms (overtaken by the next ones) and 2% delivered twice, both ways, 5 ms each way.
	messy := func(seed uint64) *netem.Config {
		return &netem.Config{Out: netem.Impairment{Delay: 5 * time.Millisecond, Reorder: 0.02, Duplicate: 0.02}, Seed: seed}
	}
	p := newImpairedPair(t, Config{}, messy(8), messy(9))
	checkTransfer(t, p, 16<<20, nil)
	for _, c := range []*netem.Conn{p.dialerNet, p.acceptNet} {
		st := c.OutStats()
		require.NotZero(t, st.Duplicated, "nothing was duplicated: %+v", st)
	}
}
