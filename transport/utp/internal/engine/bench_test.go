package engine

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/netem"
)

// tcpPair is a connected kernel TCP pair on loopback, the baseline.
func tcpPair(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	c1, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c2 := <-ch
	b.Cleanup(func() {
		c1.Close()
		c2.Close()
	})
	return c1, c2
}

func utpPair(b *testing.B) (net.Conn, net.Conn) {
	p := newPair(b, pairOpts{})
	return p.connect(b)
}

var transports = []struct {
	name string
	pair func(*testing.B) (net.Conn, net.Conn)
}{{"utp", utpPair}, {"tcp", tcpPair}}

// stream writes chunk b.N times to w while r is drained, timing only that.
func stream(b *testing.B, w, r net.Conn, chunk []byte) {
	b.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, r, int64(b.N)*int64(len(chunk)))
		done <- err
	}()
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkThroughput streams 64 KiB writes one way over loopback.
func BenchmarkThroughput(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			w, r := tr.pair(b)
			chunk := randomBytes(64<<10, 1)
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			stream(b, w, r, chunk)
		})
	}
}

// BenchmarkPingPong sends 100 bytes and waits for them to come back.
func BenchmarkPingPong(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			c1, c2 := tr.pair(b)
			go func() {
				buf := make([]byte, 100)
				for {
					if _, err := io.ReadFull(c2, buf); err != nil {
						return
					}
					if _, err := c2.Write(buf); err != nil {
						return
					}
				}
			}()
			msg := make([]byte, 100)
			buf := make([]byte, 100)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c1.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c1, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIdleConnMemory reports the heap an open, idle connection holds on
// each side after a short exchange (see idleConnMemory).
func BenchmarkIdleConnMemory(b *testing.B) {
	p := newPair(b, pairOpts{cfgA: Config{TimeWait: time.Millisecond}, cfgB: Config{TimeWait: time.Millisecond}})
	idleConnMemory(b, p, 20, 5) // warm up, as TestIdleConnMemory does
	b.ResetTimer()
	var sum float64
	for range b.N {
		sum += idleConnMemory(b, p, 200, 5)
	}
	b.ReportMetric(sum/float64(b.N), "B/conn")
}

// BenchmarkImpaired moves 4 MiB per operation across emulated paths; the
// figure is goodput, beside how the sender recovered from loss: timeouts,
// tail loss probes, needless retransmissions and the longest stall.
func BenchmarkImpaired(b *testing.B) {
	for _, tc := range []struct {
		name  string
		im    netem.Impairment
		ackIm *netem.Impairment // the way back, if not im
	}{
		{"160ms-RTT", netem.Impairment{Delay: 80 * time.Millisecond}, nil},
		{"160ms-RTT-0.2pct-loss", netem.Impairment{Delay: 80 * time.Millisecond, Loss: 0.002}, nil},
		{"20Mbit-bottleneck-40ms-RTT", netem.Impairment{Rate: 20e6 / 8, Delay: 20 * time.Millisecond}, nil},
		{"100Mbit-100ms-RTT-BDP-queue", netem.Impairment{Rate: 100e6 / 8, QueueBytes: 100e6 / 8 / 10, Delay: 50 * time.Millisecond},
			&netem.Impairment{Delay: 50 * time.Millisecond}},
		{"5pct-reorder", netem.Impairment{Delay: 5 * time.Millisecond, Reorder: 0.05}, nil},
		{"80ms-RTT-1pct-loss", netem.Impairment{Delay: 40 * time.Millisecond, Loss: 0.01}, nil},
		{"20ms-RTT", netem.Impairment{Delay: 10 * time.Millisecond}, nil},
		{"20ms-RTT-1pct-loss", netem.Impairment{Delay: 10 * time.Millisecond, Loss: 0.01}, nil},
		{"20ms-RTT-1pct-loss-5pct-reorder", netem.Impairment{Delay: 10 * time.Millisecond, Loss: 0.01,
			Reorder: 0.05, ReorderDelay: 5 * time.Millisecond}, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			back := tc.im
			if tc.ackIm != nil {
				back = *tc.ackIm
			}
			p := newPair(b, pairOpts{netA: &netem.Config{Out: tc.im, Seed: 1}, netB: &netem.Config{Out: back, Seed: 2}})
			w, r := p.connect(b)
			chunk := randomBytes(4<<20, 1)
			b.SetBytes(int64(len(chunk)))
			stream(b, w, r, chunk)
			st := w.Stats()
			rec := st.Recovery
			n := float64(b.N)
			b.ReportMetric(float64(st.Retransmits)/n, "retx/op")
			b.ReportMetric(float64(rec.RTOs)/n, "RTOs/op")
			b.ReportMetric(float64(rec.TailLossProbes)/n, "TLPs/op")
			b.ReportMetric(float64(rec.SpuriousRetransmits)/n, "spurious/op")
			b.ReportMetric(float64(rec.LostByRACK)/n, "rack-lost/op")
			b.ReportMetric(float64(rec.LostByRTO)/n, "rto-lost/op")
			b.ReportMetric(float64(rec.LongestStall.Milliseconds()), "max-stall-ms")
		})
	}
}
