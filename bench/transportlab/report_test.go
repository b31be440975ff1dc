//go:build linux

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

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
		if got := spreadOf(tc.in); got != tc.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	if got := (spread{}).format(2); got != "-" {
		t.Errorf("empty spread formats as %q", got)
	}
	if got := (spread{3, 1.5, 1, 2}).format(1); got != "1.5 [1.0-2.0]" {
		t.Errorf("format: %q", got)
	}
}

// Ratios pair runs of the same repetition, against the better of the two kernel TCP runs.
func TestSummaryRatiosAndGoals(t *testing.T) {
	p, err := nslab.PathByName("lossy80")
	if err != nil {
		t.Fatal(err)
	}
	tr := func(sys string, rep int, rate float64, finished bool, stall float64) transfer {
		return transfer{System: sys, Rep: rep, Rate: rate, Finished: finished, Bytes: 1 << 30, CPU: rate + 1, DataCPU: rate, MaxStall: stall}
	}
	pr := pathReport{name: "lossy80", path: p, transfers: []transfer{
		tr(sysP2P, 0, 4, true, 0.1), tr(sysTCP, 0, 8, true, 0.1), tr(sysTCPCubic, 0, 2, true, 0.1), tr(sysQUIC, 0, 2, true, 0.1),
		tr(sysP2P, 1, 9, true, 0.2), tr(sysTCP, 1, 5, true, 0.1), tr(sysTCPCubic, 1, 10, true, 0.1), tr(sysQUIC, 1, 3, true, 0.1),
		tr(sysP2P, 2, 1, false, 2), tr(sysTCP, 2, 4, true, 0.1), tr(sysTCPCubic, 2, 1, true, 0.1), tr(sysQUIC, 2, 0.5, true, 0.1),
	}}
	s := pr.summary(sysP2P)
	if s.runs != 3 || s.finished != 2 {
		t.Errorf("runs %d finished %d, want 3 and 2", s.runs, s.finished)
	}
	// Per repetition: 4/8, 9/10, 1/4 -> median 0.5, range 0.25-0.9.
	if want := (spread{3, 0.5, 0.25, 0.9}); s.vsTCP != want {
		t.Errorf("vs TCP %+v, want %+v", s.vsTCP, want)
	}
	if want := (spread{3, 2, 2, 3}); s.vsQUIC != want {
		t.Errorf("vs quic %+v, want %+v", s.vsQUIC, want)
	}
	if s.maxStall != 2 || s.cpuPerGiB.n != 2 {
		t.Errorf("stall %v, CPU/GiB over %d runs", s.maxStall, s.cpuPerGiB.n)
	}
	if got, want := pr.stallLimit(), 2*(80*time.Millisecond+minRTO); got != want {
		t.Errorf("stall limit %v, want %v", got, want)
	}
	var out bytes.Buffer
	printPath(&out, pr)
	printSummary(&out, []pathReport{pr})
	for _, want := range []string{"p2phttp    2/3", "2000 ms !", ">= 0.9x best kernel TCP: 0.50, NOT met", "2/3 finished, longest 2000 ms, NOT met"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
