//go:build unix

package utp

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// processCPU is the CPU time (user and system) the process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoopbackCPU: CPU seconds per GiB moved (both ends, user and system time of the process) over one of our
// sealed streams vs a kernel TCP connection on loopback, 16 MiB per iteration each, interleaved, alternating which
// goes first. Unlike throughput, CPU per byte changes little with the machine's load.
func BenchmarkLoopbackCPU(b *testing.B) {
	const size = 16 << 20
	tc, ts := tcpPair(b)
	ours := newImpairedPair(b, Config{}, nil, nil)
	oc, os := streamPair(b, ours)
	systems := [2][2]net.Conn{{tc, ts}, {oc, os}}
	warmUp(b, size, systems[:]...)
	var cpu, wall [2]time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for k := range 2 {
			j := (i + k) % 2
			start := processCPU(b)
			d, err := pump(systems[j][0], systems[j][1], size, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			cpu[j] += processCPU(b) - start
			wall[j] += d
		}
	}
	gib := float64(b.N) * size / (1 << 30)
	b.ReportMetric(cpu[0].Seconds()/gib, "tcp_cpu_s/GiB")
	b.ReportMetric(cpu[1].Seconds()/gib, "ours_cpu_s/GiB")
	b.ReportMetric(cpu[1].Seconds()/cpu[0].Seconds(), "ours/tcp_cpu")
	n := int64(b.N) * size
	b.ReportMetric(mbps(n, wall[1]), "ours_MB/s")
}
