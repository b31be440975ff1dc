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
		t.Fatalf("read after %d bytes: %v\nw: %s\nr: %s", len(got), err, w.debugString(), r.debugString())
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes (sha %x), want %d (sha %x)", len(got), sha256.Sum256(got), len(data),
			sha256.Sum256(data))
	}
}

func TestTransferBothWays(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, cb := p.connect(t)
	transfer(t, ca, cb, randomBytes(4<<20, 1))
	transfer(t, cb, ca, randomBytes(4<<20, 2))
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
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
			p := newPair(t, pairOpts{netA: &cfg, netB: &netem.Config{Out: tc.im, Seed: 8}})
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
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
	if p.a.Stats().RTOs == 0 {
		t.Error("an outage of 2 s passed without a retransmission timeout")
	}
}

func TestHalfClose(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, cb := p.connect(t)
	if _, err := ca.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := ca.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Write([]byte("x")); !errors.Is(err, ErrWriteClosed) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	req, err := io.ReadAll(cb)
	if err != nil || string(req) != "request" {
		t.Fatalf("request %q, %v", req, err)
	}
	// The other direction still works after the half close.
	if _, err := cb.Write([]byte("response")); err != nil {
		t.Fatal(err)
	}
	cb.Close()
	resp, err := io.ReadAll(ca)
	if err != nil || string(resp) != "response" {
		t.Fatalf("response %q, %v", resp, err)
	}
	ca.Close()
	waitFor(t, "both sides finish", func() bool { return p.a.Stats().Conns == 0 && p.b.Stats().Conns == 0 },
		10*time.Second)
	if _, err := ca.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestCloseDeliversQueuedData(t *testing.T) {
	im := netem.Impairment{Loss: 0.05, Delay: 2 * time.Millisecond}
	p := newPair(t, pairOpts{netA: &netem.Config{Out: im, Seed: 1}, netB: &netem.Config{Out: im, Seed: 2}})
	ca, cb := p.connect(t)
	data := randomBytes(256<<10, 9)
	if _, err := ca.Write(data); err != nil {
		t.Fatal(err)
	}
	ca.Close() // returns at once; the data and FIN follow
	got, err := io.ReadAll(cb)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d of %d bytes: %v", len(got), len(data), err)
	}
}

func TestDeadlines(t *testing.T) {
	p := newPair(t, pairOpts{cfgB: Config{ReceiveWindow: 64 << 10}})
	ca, cb := p.connect(t)
	_ = cb.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := cb.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
	// A blocked Read sees a deadline set while it waits.
	_ = cb.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := cb.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = cb.SetReadDeadline(time.Now())
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
	// Nobody reads cb: writes fill its window and the send buffer, then the
	// write deadline ends the Write with what was queued, and the
	// connection still works.
	_ = ca.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	data := randomBytes(8<<20, 1)
	n, err := ca.Write(data)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n == len(data) {
		t.Fatalf("write: %d, %v", n, err)
	}
	_ = ca.SetWriteDeadline(time.Time{})
	_ = cb.SetReadDeadline(time.Time{})
	go ca.CloseWrite()
	got, err := io.ReadAll(cb)
	if err != nil || !bytes.Equal(got, data[:n]) {
		t.Fatalf("read %d of %d: %v", len(got), n, err)
	}
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
		if s := cb.Stats(); s.ReceiveBuffered > window {
			t.Fatalf("receiver buffers %d bytes, window %d", s.ReceiveBuffered, window)
		}
		if s := ca.Stats(); s.SendQueued > 16<<20 {
			t.Fatalf("sender queues %d bytes", s.SendQueued)
		}
		time.Sleep(2 * time.Millisecond) // a slow reader
		n, err := cb.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d", len(got), len(data))
	}
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
	if _, err := ep.Dial(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial: %v", err)
	}
	if _, err := ep.Accept(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("accept: %v", err)
	}
	if n := ep.Stats().Conns; n != 0 {
		t.Fatalf("%d connections left after a failed dial", n)
	}
}

func TestFailAndClose(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, cb := p.connect(t)
	cause := errors.New("no route")
	p.a.Fail(cause)
	if _, err := ca.Read(make([]byte, 1)); !errors.Is(err, cause) || !errors.Is(err, ErrPathFailed) {
		t.Fatalf("read after Fail: %v", err)
	}
	if _, err := p.a.Dial(context.Background()); !errors.Is(err, cause) {
		t.Fatalf("dial after Fail: %v", err)
	}
	// Closing b resets its connection locally.
	p.b.Close()
	if _, err := cb.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after endpoint Close: %v", err)
	}
}

func TestResetReachesPeer(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, cb := p.connect(t)
	p.a.Close()
	_ = cb.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := cb.Read(make([]byte, 1)); !errors.Is(err, ErrReset) {
		t.Fatalf("peer read after reset: %v", err)
	}
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
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
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
	if _, err := io.ReadFull(cb, first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the receive window fills", func() bool { return cb.Stats().ReceiveBuffered >= 60<<10 }, 10*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if s := ca.Stats(); s.BytesInFlight > 64<<10+2*1500 {
		t.Fatalf("sender has %d bytes in flight into a closed window", s.BytesInFlight)
	}
	rest, err := io.ReadAll(cb)
	if err != nil || !bytes.Equal(append(first, rest...), data) {
		t.Fatalf("read %d bytes, %v", len(first)+len(rest), err)
	}
}
