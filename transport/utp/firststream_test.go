package utp

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFirstStreamOpensPromptly connects many fresh pairs on loopback, the acceptor starting 0-60 ms after the
// dialler (as two peers answering a signal do), and checks that no first stream needed its SYN sent again: none was
// dropped because it reached the acceptor before its path was ready.
func TestFirstStreamOpensPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("connects many pairs")
	}
	const rounds = 50
	resent := 0
	for i := range rounds {
		if n := firstStreamResends(t, time.Duration(i%7)*10*time.Millisecond); n > 0 {
			resent++
			t.Logf("round %d: the dialler sent %d packets again", i, n)
		}
	}
	require.Zero(t, resent, "of %d first streams, %d needed packets sent again", rounds, resent)
}

// firstStreamResends connects a fresh pair, the acceptor starting lag after the dialler, opens the first stream,
// and returns how many packets the dialler's engine sent again meanwhile (on loopback, only a SYN the acceptor
// dropped is; its first timeout is at least congestion.DefaultMinRTO).
func firstStreamResends(t *testing.T, lag time.Duration) int64 {
	t.Helper()
	a, err := Listen("udp4", "127.0.0.1:0", Config{})
	require.NoError(t, err)
	defer a.Close()
	b, err := Listen("udp4", "127.0.0.1:0", Config{})
	require.NoError(t, err)
	defer b.Close()
	key := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var errB, errAcc error
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(lag)
		var pb *Path
		if pb, errB = b.Connect(ctx, Peer{Key: key, Candidates: a.HostCandidates()}); errB != nil {
			return
		}
		var c net.Conn
		if c, errAcc = pb.AcceptStream(ctx); errAcc == nil {
			c.Close()
		}
	}()
	pa, errA := a.Connect(ctx, Peer{Key: key, Candidates: b.HostCandidates(), Dialer: true})
	require.NoError(t, errA)
	c, err := pa.OpenStream(ctx)
	require.NoError(t, err)
	wg.Wait()
	require.NoError(t, errB)
	require.NoError(t, errAcc)
	resent := pa.eng.Stats().Retransmits
	c.Close()
	return resent
}

// slowPunches delays every confirmed punch the wrapped socket receives (everything else passes at once), so the
// dialler handles the acceptor's confirmed punch-back well after the confirmed punch reply that made it ready.
// It opens a copy of each datagram with the session key (the dialler's side) to see what it is.
type slowPunches struct {
	net.PacketConn
	keys  pathKeys
	delay time.Duration
}

func (s slowPunches) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := s.PacketConn.ReadFrom(b)
	if err == nil {
		if c, ok := openCtrl(s.keys, b[:n]); ok && c.kind == kindPunch && c.flags&flagConfirmed != 0 {
			time.Sleep(s.delay)
		}
	}
	return n, from, err
}

// TestFirstStreamAfterPunchBack builds the race deterministically: the dialler starts first, so the acceptor's
// first punch is answered with an unconfirmed reply plus a punch back; the acceptor answers that punch with a
// confirmed reply (making the dialler ready) and punches back again. Nominating the pair only in answer to that last
// punch, which the dialler here reads 100 ms late, let the dialler's SYN reach the acceptor before its path was
// established: the demultiplexer dropped it and the stream waited for a SYN retransmission.
func TestFirstStreamAfterPunchBack(t *testing.T) {
	for i := range 5 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		require.NoError(t, err)
		key := newKey(t)
		keys, err := derivePathKeys(key, true, ChaCha20Poly1305, false)
		require.NoError(t, err)
		a, err := NewTransport(slowPunches{pc, keys, 100 * time.Millisecond}, Config{})
		require.NoError(t, err)
		t.Cleanup(func() { a.Close() })
		b := listen(t, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		type result struct {
			p   *Path
			err error
		}
		ra := make(chan result, 1)
		go func() {
			p, err := a.Connect(ctx, Peer{Key: key, Candidates: b.HostCandidates(), Dialer: true})
			ra <- result{p, err}
		}()
		time.Sleep(10 * time.Millisecond) // the dialler's first punch finds no path yet and is dropped
		accepted := make(chan error, 1)
		go func() {
			pb, err := b.Connect(ctx, Peer{Key: key, Candidates: a.HostCandidates()})
			if err == nil {
				var c net.Conn
				if c, err = pb.AcceptStream(ctx); err == nil {
					c.Close()
				}
			}
			accepted <- err
		}()
		r := <-ra
		require.NoError(t, r.err)
		// From here the dialler's datagrams all find the acceptor's path: the acceptor answered its punches. A SYN
		// the acceptor's Transport dropped shows in its counters.
		before := b.Stats()
		c, err := r.p.OpenStream(ctx)
		require.NoError(t, err)
		require.NoError(t, <-accepted)
		after := b.Stats()
		c.Close()
		cancel()
		a.Close()
		require.Equal(t, before, after, "round %d: the acceptor dropped datagrams of the dialler's first stream", i)
	}
}
