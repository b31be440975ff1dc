package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/netem"
	"github.com/p2phttp/p2phttp/transport/utp/internal/congestion"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x5555))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// transfer writes data on w, closes its write side, and checks r reads it all,
// byte for byte, then EOF.
func transfer(t *testing.T, w, r *Conn, data []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		if err == nil {
			err = w.CloseWrite()
		}
		errc <- err
	}()
	_ = r.SetReadDeadline(time.Now().Add(15 * time.Second))
	got, err := io.ReadAll(r)
	if err != nil {
		// The connections' state only on failure: testify would build the message on every call, and reading the
		// state races with the engine's timers.
		require.NoError(t, err, "read after %d bytes\nw: %s\nr: %s", len(got), w.debugString(), r.debugString())
	}
	require.NoError(t, <-errc, "write")
	if !bytes.Equal(got, data) {
		require.Fail(t, "wrong bytes", "got %d bytes (sha %x), want %d (sha %x)", len(got), sha256.Sum256(got),
			len(data), sha256.Sum256(data))
	}
}

func TestTransferBothWays(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, cb := p.connect(t)
	transfer(t, ca, cb, randomBytes(4<<20, 1))
	transfer(t, cb, ca, randomBytes(4<<20, 2))
	require.NoError(t, ca.Close())
	require.NoError(t, cb.Close())
	waitFor(t, "both connections leave the table", func() bool {
		return p.a.Stats().Conns == 0 && p.b.Stats().Conns == 0
	}, 10*time.Second)
}

func waitFor(t *testing.T, what string, cond func() bool, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestImpairedTransfers(t *testing.T) {
	for _, tc := range []struct {
		name string
		im   netem.Impairment
		size int
	}{
		{"loss 2%", netem.Impairment{Loss: 0.02}, 2 << 20},
		{"loss 10%", netem.Impairment{Loss: 0.10}, 512 << 10},
		{"reorder 5%", netem.Impairment{Reorder: 0.05, ReorderDelay: 5 * time.Millisecond}, 2 << 20},
		{"duplicate 5%", netem.Impairment{Duplicate: 0.05}, 2 << 20},
		{"20 Mbit/s bottleneck", netem.Impairment{Rate: 20e6 / 8, Delay: 10 * time.Millisecond}, 2 << 20},
		{"160 ms RTT, 2% loss", netem.Impairment{Delay: 80 * time.Millisecond, Loss: 0.02}, 1 << 20},
		{"burst loss", netem.Impairment{BurstLoss: 0.005, BurstLength: 6}, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := netem.Config{Out: tc.im, Seed: 7}
			// netem's bursts are counted in packets, not time: a connection
			// that sends one packet per retransmission timeout (the acceptor's
			// first flight goes out with no RTT sample) stays in a burst for
			// as many timeouts as the burst has packets. With the default
			// InitialRTO and MaxRTO, a burst of eight takes longer than
			// transfer's deadline.
			ecfg := Config{InitialRTO: 250 * time.Millisecond, MaxRTO: time.Second}
			p := newPair(t, pairOpts{netA: &cfg, netB: &netem.Config{Out: tc.im, Seed: 8}, cfgA: ecfg, cfgB: ecfg})
			ca, cb := p.connect(t)
			transfer(t, ca, cb, randomBytes(tc.size, 3))
			transfer(t, cb, ca, randomBytes(tc.size/4, 4))
			t.Logf("a: %+v", p.a.Stats())
		})
	}
}

func TestOutage(t *testing.T) {
	im := netem.Impairment{Delay: 5 * time.Millisecond,
		Outages: []netem.Outage{{Start: 300 * time.Millisecond, Duration: 2 * time.Second}}}
	p := newPair(t, pairOpts{netA: &netem.Config{Out: im}, netB: &netem.Config{Out: im}})
	ca, cb := p.connect(t)
	data := randomBytes(1<<20, 5)
	go func() {
		// A steady writer, so the outage hits mid-transfer.
		for off := 0; off < len(data); off += 32 << 10 {
			if _, err := ca.Write(data[off:min(len(data), off+32<<10)]); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		ca.CloseWrite()
	}()
	_ = cb.SetReadDeadline(time.Now().Add(60 * time.Second))
	got, err := io.ReadAll(cb)
	require.NoError(t, err, "read %d bytes", len(got))
	require.True(t, bytes.Equal(got, data), "read %d bytes, want %d", len(got), len(data))
	assert.NotZero(t, p.a.Stats().RTOs, "an outage of 2 s passed without a retransmission timeout")
}

func TestHalfClose(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, cb := p.connect(t)
	_, err := ca.Write([]byte("request"))
	require.NoError(t, err)
	require.NoError(t, ca.CloseWrite())
	_, err = ca.Write([]byte("x"))
	require.ErrorIs(t, err, ErrWriteClosed, "write after CloseWrite")
	req, err := io.ReadAll(cb)
	require.NoError(t, err, "request")
	require.Equal(t, "request", string(req))
	// The other direction still works after the half close.
	_, err = cb.Write([]byte("response"))
	require.NoError(t, err)
	cb.Close()
	resp, err := io.ReadAll(ca)
	require.NoError(t, err, "response")
	require.Equal(t, "response", string(resp))
	ca.Close()
	waitFor(t, "both sides finish", func() bool { return p.a.Stats().Conns == 0 && p.b.Stats().Conns == 0 },
		10*time.Second)
	_, err = ca.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrClosed, "read after close")
}

func TestCloseDeliversQueuedData(t *testing.T) {
	im := netem.Impairment{Loss: 0.05, Delay: 2 * time.Millisecond}
	p := newPair(t, pairOpts{netA: &netem.Config{Out: im, Seed: 1}, netB: &netem.Config{Out: im, Seed: 2}})
	ca, cb := p.connect(t)
	data := randomBytes(256<<10, 9)
	_, err := ca.Write(data)
	require.NoError(t, err)
	ca.Close() // returns at once; the data and FIN follow
	got, err := io.ReadAll(cb)
	require.NoError(t, err, "read %d of %d bytes", len(got), len(data))
	require.True(t, bytes.Equal(got, data), "read %d of %d bytes", len(got), len(data))
}

func TestDeadlines(t *testing.T) {
	p := newPair(t, pairOpts{cfgB: Config{ReceiveWindow: 64 << 10}})
	ca, cb := p.connect(t)
	_ = cb.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := cb.Read(make([]byte, 10))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "read")
	// A blocked Read sees a deadline set while it waits.
	_ = cb.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := cb.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = cb.SetReadDeadline(time.Now())
	require.ErrorIs(t, <-errc, os.ErrDeadlineExceeded, "read")
	// Nobody reads cb: writes fill its window and the send buffer, then the
	// write deadline ends the Write with what was queued, and the
	// connection still works.
	_ = ca.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	data := randomBytes(8<<20, 1)
	n, err := ca.Write(data)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "write: %d", n)
	require.NotZero(t, n, "write")
	require.NotEqual(t, len(data), n, "write: all of it")
	_ = ca.SetWriteDeadline(time.Time{})
	_ = cb.SetReadDeadline(time.Time{})
	go ca.CloseWrite()
	got, err := io.ReadAll(cb)
	require.NoError(t, err, "read %d of %d", len(got), n)
	require.True(t, bytes.Equal(got, data[:n]), "read %d of %d", len(got), n)
}

func TestSlowReaderBoundsMemory(t *testing.T) {
	const window = 128 << 10
	p := newPair(t, pairOpts{cfgA: Config{MinSendBuffer: 64 << 10}, cfgB: Config{ReceiveWindow: window}})
	ca, cb := p.connect(t)
	data := randomBytes(2<<20, 11)
	go func() {
		ca.Write(data)
		ca.CloseWrite()
	}()
	var got []byte
	buf := make([]byte, 16<<10)
	for {
		require.LessOrEqual(t, cb.Stats().ReceiveBuffered, window, "receiver buffers more than the window")
		require.LessOrEqual(t, ca.Stats().SendQueued, 16<<20, "sender queues")
		time.Sleep(2 * time.Millisecond) // a slow reader
		n, err := cb.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	require.True(t, bytes.Equal(got, data), "got %d bytes, want %d", len(got), len(data))
}

func TestDialAcceptContext(t *testing.T) {
	// A peer that never answers: Dial gives up when its context ends.
	pc := listenUDP(t)
	defer pc.Close()
	silent := listenUDP(t)
	defer silent.Close()
	ep := NewEndpoint(&udpLink{pc: pc, peer: silent.LocalAddr(), safe: 1200, max: 1472}, Config{})
	defer ep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := ep.Dial(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "dial")
	_, err = ep.Accept(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "accept")
	require.Zero(t, ep.Stats().Conns, "connections left after a failed dial")
}

func TestFailAndClose(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, cb := p.connect(t)
	cause := errors.New("no route")
	p.a.Fail(cause)
	_, err := ca.Read(make([]byte, 1))
	require.ErrorIs(t, err, cause, "read after Fail")
	require.ErrorIs(t, err, ErrPathFailed, "read after Fail")
	_, err = p.a.Dial(context.Background())
	require.ErrorIs(t, err, cause, "dial after Fail")
	// Closing b resets its connection locally.
	p.b.Close()
	_, err = cb.Write([]byte("x"))
	require.ErrorIs(t, err, ErrClosed, "write after endpoint Close")
}

func TestResetReachesPeer(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, cb := p.connect(t)
	p.a.Close()
	_ = cb.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := cb.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrReset, "peer read after reset")
	_ = ca
}

func TestBothSidesDial(t *testing.T) {
	p := newPair(t, pairOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 20
	errc := make(chan error, 4*n)
	for _, ep := range []*Endpoint{p.a, p.b} {
		go func() {
			for range n {
				c, err := ep.Accept(ctx)
				if err != nil {
					errc <- err
					return
				}
				go func() {
					b, err := io.ReadAll(c)
					if err == nil {
						_, err = c.Write(b)
					}
					c.Close()
					errc <- err
				}()
			}
		}()
		for i := range n {
			go func() {
				c, err := ep.Dial(ctx)
				if err != nil {
					errc <- err
					return
				}
				msg := []byte{byte(i), 1, 2, 3}
				c.Write(msg)
				c.CloseWrite()
				got, err := io.ReadAll(c)
				if err == nil && !bytes.Equal(got, msg) {
					err = errors.New("echo differs")
				}
				c.Close()
				errc <- err
			}()
		}
	}
	for range 4 * n {
		require.NoError(t, <-errc)
	}
}

// TestControllers runs a transfer over a lossy, bottlenecked path with each
// congestion controller, driven only through its interface.
func TestControllers(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func() congestion.Controller
	}{
		{"cubic", func() congestion.Controller { return congestion.NewCubic(congestion.CubicConfig{}) }},
		{"ledbat", func() congestion.Controller { return congestion.NewLEDBAT(congestion.LEDBATConfig{}) }},
		{"bbr", func() congestion.Controller { return congestion.NewBBR(congestion.BBRConfig{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			im := netem.Impairment{Loss: 0.02, Rate: 20e6 / 8, Delay: 5 * time.Millisecond}
			cfg := Config{NewController: tc.new}
			p := newPair(t, pairOpts{netA: &netem.Config{Out: im, Seed: 5}, netB: &netem.Config{Out: im, Seed: 6},
				cfgA: cfg, cfgB: cfg})
			ca, cb := p.connect(t)
			transfer(t, ca, cb, randomBytes(1<<20, 12))
		})
	}
}

// TestReaderPause stops reading for longer than the window lasts: the sender
// probes the closed window and waits, however long, and the transfer ends
// byte for byte once the reader resumes.
func TestReaderPause(t *testing.T) {
	p := newPair(t, pairOpts{cfgB: Config{ReceiveWindow: 64 << 10}, cfgA: Config{MinRTO: 20 * time.Millisecond}})
	ca, cb := p.connect(t)
	data := randomBytes(1<<20, 13)
	go func() {
		ca.Write(data)
		ca.CloseWrite()
	}()
	first := make([]byte, 1000)
	_, err := io.ReadFull(cb, first)
	require.NoError(t, err)
	waitFor(t, "the receive window fills", func() bool { return cb.Stats().ReceiveBuffered >= 60<<10 }, 10*time.Second)
	time.Sleep(1500 * time.Millisecond)
	require.LessOrEqual(t, ca.Stats().BytesInFlight, 64<<10+2*1500, "sender has bytes in flight into a closed window")
	rest, err := io.ReadAll(cb)
	require.NoError(t, err, "read %d bytes", len(first)+len(rest))
	require.True(t, bytes.Equal(append(first, rest...), data), "read %d bytes, want %d", len(first)+len(rest),
		len(data))
}
