//go:build linux

package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/internal/nslab"
)

func TestSpreadOf(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want spread
	}{
		{nil, spread{}},
		{[]float64{3}, spread{1, 3, 3, 3}},
		{[]float64{5, 1, 3}, spread{3, 3, 1, 5}},
		{[]float64{4, 1, 2, 8}, spread{4, 3, 1, 8}},
	} {
		assert.Equal(t, tc.want, spreadOf(tc.in), "spreadOf(%v)", tc.in)
	}
	assert.Equal(t, "-", (spread{}).format(2), "empty spread")
	assert.Equal(t, "1.5 [1.0-2.0]", (spread{3, 1.5, 1, 2}).format(1))
}

// Ratios pair runs of the same repetition, against the better of the two kernel TCP runs.
func TestSummaryRatiosAndGoals(t *testing.T) {
	p, err := nslab.PathByName("lossy80")
	require.NoError(t, err)
	tr := func(sys string, rep int, rate float64, finished bool, stall float64) transfer {
		return transfer{System: sys, Rep: rep, Rate: rate, Finished: finished, Bytes: 1 << 30, CPU: rate + 1, DataCPU: rate, MaxStall: stall}
	}
	pr := pathReport{name: "lossy80", path: p, transfers: []transfer{
		tr(sysP2P, 0, 4, true, 0.1), tr(sysTCP, 0, 8, true, 0.1), tr(sysTCPCubic, 0, 2, true, 0.1), tr(sysQUIC, 0, 2, true, 0.1),
		tr(sysP2P, 1, 9, true, 0.2), tr(sysTCP, 1, 5, true, 0.1), tr(sysTCPCubic, 1, 10, true, 0.1), tr(sysQUIC, 1, 3, true, 0.1),
		tr(sysP2P, 2, 1, false, 2), tr(sysTCP, 2, 4, true, 0.1), tr(sysTCPCubic, 2, 1, true, 0.1), tr(sysQUIC, 2, 0.5, true, 0.1),
	}}
	s := pr.summary(sysP2P)
	assert.Equal(t, 3, s.runs, "runs")
	assert.Equal(t, 2, s.finished, "finished")
	// Per repetition: 4/8, 9/10, 1/4 -> median 0.5, range 0.25-0.9.
	assert.Equal(t, spread{3, 0.5, 0.25, 0.9}, s.vsTCP, "vs TCP")
	assert.Equal(t, spread{3, 2, 2, 3}, s.vsQUIC, "vs quic")
	assert.Equal(t, 2.0, s.maxStall, "longest stall")
	assert.Equal(t, 2, s.cpuPerGiB.n, "runs counted in CPU/GiB")
	assert.Equal(t, 2*(80*time.Millisecond+minRTO), pr.stallLimit(), "stall limit")
	var out bytes.Buffer
	printPath(&out, pr)
	printSummary(&out, []pathReport{pr})
	for _, want := range []string{"p2phttp    2/3", "2000 ms !", ">= 0.9x best kernel TCP: 0.50, NOT met", "2/3 finished, longest 2000 ms, NOT met"} {
		assert.Contains(t, out.String(), want)
	}
}

// Each -rr system is compared with its own kernel TCP baseline of the same repetition: stream systems with
// tcp-stream, HTTP ones with tcp-http; the goal line uses the stream ratio only.
func TestRoundTripRatios(t *testing.T) {
	p, err := nslab.PathByName("clean")
	require.NoError(t, err)
	rt := func(sys string, rep int, med float64) roundTrips {
		r := roundTrips{System: sys, Rep: rep}
		r.N, r.MedianUS, r.P90US = 50, med, med*2
		return r
	}
	failed := rt(rrQUIC, 1, 0)
	failed.Err = "quicperf: no report line"
	pr := pathReport{name: "clean", path: p, rts: []roundTrips{
		rt(rrTCPStream, 0, 100), rt(rrP2PStream, 0, 120), rt(rrTCPHTTP, 0, 200), rt(rrCLIDir, 0, 500), rt(rrQUIC, 0, 300),
		rt(rrTCPStream, 1, 50), rt(rrP2PStream, 1, 75), rt(rrTCPHTTP, 1, 100), rt(rrCLIDir, 1, 300), failed,
	}}
	med, ratio := pr.rtSpread(rrP2PStream)
	assert.Equal(t, spread{2, 97.5, 75, 120}, med)
	assert.Equal(t, spread{2, 1.35, 1.2, 1.5}, ratio)
	_, ratio = pr.rtSpread(rrCLIDir)
	assert.Equal(t, spread{2, 2.75, 2.5, 3}, ratio)
	_, ratio = pr.rtSpread(rrQUIC)
	assert.Equal(t, spread{1, 3, 3, 3}, ratio, "the failed repetition is left out")
	assert.Equal(t, []string{rrP2PStream, rrTCPStream, rrQUIC, rrCLIDir, rrTCPHTTP}, pr.rrSystems())
	var out bytes.Buffer
	printPath(&out, pr)
	printSummary(&out, []pathReport{pr})
	for _, want := range []string{
		"rr quic-stream rep 1: quicperf: no report line",
		"over one stream <= 1.3x kernel TCP's: 1.35, NOT met",
		"(not the goal's measure) 100-byte HTTP GET through forward -> serve --dir: 2.75x",
	} {
		assert.Contains(t, out.String(), want)
	}
}

func TestRotate(t *testing.T) {
	list := []string{"a", "b", "c"}
	assert.Equal(t, []string{"b", "c", "a"}, rotate(list, 1))
	assert.Equal(t, []string{"a", "b", "c"}, rotate(list, 3))
	assert.Equal(t, []string{"a", "b", "c"}, list, "rotate must not modify its argument")
	assert.Nil(t, rotate(nil, 2))
}
