package utp

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/netem"
	"github.com/stretchr/testify/require"
)

// Benchmarks compare this transport with kernel TCP on loopback measured in the same run, interleaved iteration by
// iteration so machine load hits both alike, and report the ratio. Run them with, for example:
//
//	go test -run '^$' -bench . -benchtime 5x ./transport/utp/

// tcpPair is a kernel TCP connection pair on loopback, the baseline.
func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(tb, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp4", ln.Addr().String())
	require.NoError(tb, err)
	server, ok := <-accepted
	require.True(tb, ok, "TCP Accept failed")
	tb.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// streamPair is one of our streams, open in both directions.
func streamPair(tb testing.TB, p *impairedPair) (client, server net.Conn) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := p.acceptor.AcceptStream(ctx)
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := p.dialer.OpenStream(ctx)
	require.NoError(tb, err)
	server, ok := <-accepted
	require.True(tb, ok, "AcceptStream failed")
	tb.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// pump writes size bytes to w in 64 KiB writes while reading them from r, and returns how long it took. Both conns
// get the deadline; a stall past it is an error.
func pump(w, r net.Conn, size int64, deadline time.Duration) (time.Duration, error) {
	start := time.Now()
	dl := start.Add(deadline)
	w.SetDeadline(dl)
	r.SetDeadline(dl)
	defer w.SetDeadline(time.Time{})
	defer r.SetDeadline(time.Time{})
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for left := size; left > 0; {
			n, err := w.Write(buf[:min(int64(len(buf)), left)])
			if err != nil {
				werr <- err
				return
			}
			left -= int64(n)
		}
		werr <- nil
	}()
	n, err := io.CopyN(io.Discard, r, size)
	if err != nil {
		return 0, fmt.Errorf("read %d of %d bytes in %v: %w", n, size, time.Since(start).Round(time.Millisecond), err)
	}
	return time.Since(start), <-werr
}

func mbps(bytes int64, d time.Duration) float64 { return float64(bytes) / d.Seconds() / 1e6 }

// warmUp pumps size bytes once through each pair (writer, reader), to take it past slow start.
func warmUp(b *testing.B, size int64, pairs ...[2]net.Conn) {
	for _, c := range pairs {
		_, err := pump(c[0], c[1], size, time.Minute)
		require.NoError(b, err)
	}
}

// interleave pumps size bytes through x and y (writer, reader) once per benchmark iteration, alternating which goes
// first so machine load hits both alike, and returns the total time of each.
func interleave(b *testing.B, size int64, x, y [2]net.Conn) (xT, yT time.Duration) {
	run := func(c [2]net.Conn, into *time.Duration) {
		d, err := pump(c[0], c[1], size, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		*into += d
	}
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			run(x, &xT)
			run(y, &yT)
		} else {
			run(y, &yT)
			run(x, &xT)
		}
	}
	return xT, yT
}

// BenchmarkLoopbackThroughput: ours vs kernel TCP, 16 MiB per iteration each.
func BenchmarkLoopbackThroughput(b *testing.B) {
	const size = 16 << 20
	tc, ts := tcpPair(b)
	ours := newImpairedPair(b, Config{}, nil, nil)
	oc, os := streamPair(b, ours)
	warmUp(b, size, [2]net.Conn{tc, ts}, [2]net.Conn{oc, os})
	tcpT, oursT := interleave(b, size, [2]net.Conn{tc, ts}, [2]net.Conn{oc, os})
	n := int64(b.N) * size
	b.ReportMetric(mbps(n, tcpT), "tcp_MB/s")
	b.ReportMetric(mbps(n, oursT), "ours_MB/s")
	b.ReportMetric(tcpT.Seconds()/oursT.Seconds(), "ours/tcp")
}

// BenchmarkSealingCost: the same build with sealing on and off (Config.noSeal: same datagrams, counters and replay
// checks, no AEAD), 16 MiB per iteration each, interleaved, for each cipher. Target: sealed >= 0.9x unsealed.
func BenchmarkSealingCost(b *testing.B) {
	for _, c := range allCiphers {
		b.Run(string(c), func(b *testing.B) {
			const size = 16 << 20
			sealed := newImpairedPairCipher(b, Config{}, c, nil, nil)
			sc, ss := streamPair(b, sealed)
			clear := newImpairedPairCipher(b, Config{noSeal: true}, c, nil, nil)
			cc, cs := streamPair(b, clear)
			warmUp(b, size, [2]net.Conn{sc, ss}, [2]net.Conn{cc, cs})
			sealedT, clearT := interleave(b, size, [2]net.Conn{sc, ss}, [2]net.Conn{cc, cs})
			n := int64(b.N) * size
			b.ReportMetric(mbps(n, sealedT), "sealed_MB/s")
			b.ReportMetric(mbps(n, clearT), "unsealed_MB/s")
			b.ReportMetric(clearT.Seconds()/sealedT.Seconds(), "sealed/unsealed")
		})
	}
}

// BenchmarkLoopbackDefaultBuffers: ours with the kernel's default socket buffers (a full buffer drops datagrams,
// which loss recovery must absorb) must not fail. 16 MiB per iteration, a failure being no progress for the 45 s
// deadline. Reports failures and the throughput of what completed.
func BenchmarkLoopbackDefaultBuffers(b *testing.B) {
	const (
		size     = 16 << 20
		deadline = 45 * time.Second
	)
	var (
		fails int
		d     time.Duration
		n     int64
	)
	// 106496 B requested is doubled by Linux to 212992 B, the default of net.core.rmem_default.
	ours := newImpairedPair(b, Config{SocketBuffer: 106496}, nil, nil)
	oc, os := streamPair(b, ours)
	for b.Loop() {
		if t, err := pump(oc, os, size, deadline); err != nil {
			b.Logf("ours, default-sized buffers: %v", err)
			fails++
			oc, os = streamPair(b, ours)
		} else {
			d += t
			n += size
		}
	}
	r, w := ours.dialerTr.BufferSizes()
	b.Logf("granted SO_RCVBUF %d, SO_SNDBUF %d", r, w)
	b.ReportMetric(float64(fails)/float64(b.N), "fails/op")
	if n > 0 {
		b.ReportMetric(mbps(n, d), "ours_MB/s")
	}
}

// bottleneckNet is the benchmark's emulated uplink: 20 Mbit/s, a 64 KB tail-drop queue, 20 ms each way.
func bottleneckNet(seed uint64) *netem.Config {
	return &netem.Config{
		Out:  netem.Impairment{Rate: bottleneckRate, QueueBytes: 64 << 10, Delay: 20 * time.Millisecond},
		In:   netem.Impairment{Delay: 20 * time.Millisecond},
		Seed: seed,
	}
}

const bottleneckRate = 20e6 / 8

// BenchmarkBottleneck: goodput through a 20 Mbit/s link with a 64 KB queue and a 40 ms RTT, and the share of
// packets dropped at that queue, 8 MiB per iteration. Targets: >= 80% of the link rate, < 1% dropped at the queue.
func BenchmarkBottleneck(b *testing.B) {
	const size = 8 << 20
	ours := newImpairedPair(b, Config{}, bottleneckNet(1), nil)
	oc, os := streamPair(b, ours)
	warmUp(b, 2<<20, [2]net.Conn{oc, os}) // as a long transfer would be
	var (
		oursT  time.Duration
		oursN  int64
		before = ours.dialerNet.OutStats()
	)
	for b.Loop() {
		d, err := pump(oc, os, size, 2*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		oursT += d
		oursN += size
	}
	after := ours.dialerNet.OutStats()
	b.ReportMetric(mbps(oursN, oursT), "ours_MB/s")
	b.ReportMetric(100*float64(oursN)/oursT.Seconds()/bottleneckRate, "ours_%link")
	b.ReportMetric(100*float64(after.QueueDrops-before.QueueDrops)/float64(max(after.Offered-before.Offered, 1)), "ours_%queue_drops")
}

// BenchmarkBDP: goodput over a 100 Mbit/s link at 100 ms RTT whose drop-tail queue holds one bandwidth-delay
// product (the NAT lab's bdp path), 16 MiB per iteration from a cold start, per congestion controller.
func BenchmarkBDP(b *testing.B) {
	const size, rate = 16 << 20, 100e6 / 8
	for _, cc := range []string{"bbr", "cubic"} {
		b.Run(cc, func(b *testing.B) {
			var d time.Duration
			for b.Loop() {
				up := netem.Impairment{Rate: rate, QueueBytes: rate / 10, Delay: 50 * time.Millisecond}
				p := newImpairedPair(b, Config{CongestionControl: cc},
					&netem.Config{Out: up, In: netem.Impairment{Delay: 50 * time.Millisecond}, Seed: 5}, nil)
				oc, os := streamPair(b, p)
				t, err := pump(oc, os, size, 2*time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				d += t
			}
			b.ReportMetric(mbps(int64(b.N)*size, d), "MB/s")
			b.ReportMetric(100*float64(int64(b.N)*size)/d.Seconds()/rate, "%link")
		})
	}
}

// BenchmarkPingPong100B: 100 B request, 100 B reply, on one of our streams vs a kernel TCP connection, both on
// loopback, alternating round trip by round trip, 500 of each per iteration. Reports mean, median and p99.
func BenchmarkPingPong100B(b *testing.B) { pingPong(b, Config{}) }

// BenchmarkPingPongReaderGrace is BenchmarkPingPong100B with streams whose Read reads the socket itself for several
// Config.ReaderGrace values, and never (-1).
func BenchmarkPingPongReaderGrace(b *testing.B) {
	for _, g := range []time.Duration{-1, 50 * time.Microsecond, 200 * time.Microsecond, time.Millisecond, 5 * time.Millisecond} {
		b.Run(fmt.Sprint(g), func(b *testing.B) { pingPong(b, Config{ReaderGrace: g}) })
	}
}

func pingPong(b *testing.B, cfg Config) {
	tc, ts := tcpPair(b)
	ours := newImpairedPair(b, cfg, nil, nil)
	oc, os := streamPair(b, ours)
	echo := func(c net.Conn) {
		buf := make([]byte, 100)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}
	go echo(ts)
	go echo(os)
	msg, reply := make([]byte, 100), make([]byte, 100)
	roundTrip := func(c net.Conn) time.Duration {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for range 200 { // warm up
		roundTrip(tc)
		roundTrip(oc)
	}
	var tcpRT, oursRT []time.Duration
	for b.Loop() {
		for range 500 {
			tcpRT = append(tcpRT, roundTrip(tc))
			oursRT = append(oursRT, roundTrip(oc))
		}
	}
	stats := func(name string, d []time.Duration) float64 {
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		slices.Sort(d)
		mean := float64(sum.Microseconds()) / float64(len(d))
		b.ReportMetric(mean, name+"_mean_µs")
		b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, name+"_p50_µs")
		b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds())/1e3, name+"_p99_µs")
		return mean
	}
	r, o := stats("tcp", tcpRT), stats("ours", oursRT)
	b.ReportMetric(o/r, "ours/tcp_mean")
}

// BenchmarkConcurrentPingPong: 8 streams of one path each exchange 100-byte requests and responses at once, with
// streams reading the socket themselves (the default) and never (-1): the Reads contend for the socket.
func BenchmarkConcurrentPingPong(b *testing.B) {
	for _, g := range []time.Duration{-1, 0} {
		b.Run(fmt.Sprintf("grace=%v", g), func(b *testing.B) {
			p := newImpairedPair(b, Config{ReaderGrace: g}, nil, nil)
			const streams, rounds = 8, 200
			var conns [streams][2]net.Conn
			for i := range conns {
				conns[i][0], conns[i][1] = streamPair(b, p)
				go func(c net.Conn) { _, _ = io.Copy(c, c) }(conns[i][1])
			}
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range conns {
					wg.Add(1)
					go func(c net.Conn) {
						defer wg.Done()
						buf := make([]byte, 100)
						for range rounds {
							if _, err := c.Write(buf); err != nil {
								b.Error(err)
								return
							}
							if _, err := io.ReadFull(c, buf); err != nil {
								b.Error(err)
								return
							}
						}
					}(conns[i][0])
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*rounds), "µs/round")
		})
	}
}
