//go:build linux

package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Linux's minimum retransmission timeout; two RTOs on a path are taken as 2 x (RTT + this).
const minRTO = 200 * time.Millisecond

// spread is the median and range of a set of values.
type spread struct {
	n                int
	median, min, max float64
}

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{n: len(s), median: med, min: s[0], max: s[len(s)-1]}
}

func (s spread) format(prec int) string {
	if s.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f [%.*f-%.*f]", prec, s.median, prec, s.min, prec, s.max)
}

// rates returns each repetition's rate of sys (partial rates of unfinished runs included).
func (pr pathReport) rates(sys string) map[int]float64 {
	m := map[int]float64{}
	for _, t := range pr.transfers {
		if t.System == sys && t.Rate > 0 {
			m[t.Rep] = t.Rate
		}
	}
	return m
}

// ratios returns sys's rate over the baseline's, repetition by repetition; the baseline of a repetition is the
// best of the given systems in it.
func (pr pathReport) ratios(sys string, baseline ...string) []float64 {
	own := pr.rates(sys)
	var out []float64
	for rep, r := range own {
		best := 0.0
		for _, b := range baseline {
			best = math.Max(best, pr.rates(b)[rep])
		}
		if best > 0 {
			out = append(out, r/best)
		}
	}
	return out
}

type systemSummary struct {
	finished, runs int
	rate           spread  // MB/s
	vsTCP, vsQUIC  spread  // per-repetition ratios
	cpuPerGiB      spread  // CPU from the first byte on, finished runs only
	maxStall       float64 // seconds, over every run
}

func (pr pathReport) summary(sys string) systemSummary {
	var s systemSummary
	var rates, cpu []float64
	for _, t := range pr.transfers {
		if t.System != sys {
			continue
		}
		s.runs++
		s.maxStall = math.Max(s.maxStall, t.MaxStall)
		if t.Rate > 0 {
			rates = append(rates, t.Rate)
		}
		if t.Finished {
			s.finished++
			cpu = append(cpu, t.DataCPU/(float64(t.Bytes)/(1<<30)))
		}
	}
	s.rate, s.cpuPerGiB = spreadOf(rates), spreadOf(cpu)
	s.vsTCP = spreadOf(pr.ratios(sys, sysTCP, sysTCPCubic))
	s.vsQUIC = spreadOf(pr.ratios(sys, sysQUIC))
	return s
}

func (pr pathReport) stallLimit() time.Duration { return 2 * (pr.path.RTT + minRTO) }

func (pr pathReport) systems() []string {
	var out []string
	for _, t := range pr.transfers {
		if !slices.Contains(out, t.System) {
			out = append(out, t.System)
		}
	}
	return out
}

// rtSpread returns the spread of sys's per-repetition median round trips in microseconds, and of its ratio to its
// kernel TCP baseline's (rrBaseline) in the same repetition.
func (pr pathReport) rtSpread(sys string) (spread, spread) {
	base := rrBaseline(sys)
	med := map[int]float64{}
	tcp := map[int]float64{}
	for _, rt := range pr.rts {
		if rt.Err != "" || rt.MedianUS <= 0 {
			continue
		}
		if rt.System == sys {
			med[rt.Rep] = rt.MedianUS
		}
		if rt.System == base {
			tcp[rt.Rep] = rt.MedianUS
		}
	}
	var v, ratio []float64
	for rep, m := range med {
		v = append(v, m)
		if t := tcp[rep]; t > 0 {
			ratio = append(ratio, m/t)
		}
	}
	return spreadOf(v), spreadOf(ratio)
}

// rrSystems lists the -rr systems that ran, in the order of allRRSystems.
func (pr pathReport) rrSystems() []string {
	var out []string
	for _, sys := range allRRSystems {
		if slices.ContainsFunc(pr.rts, func(rt roundTrips) bool { return rt.System == sys }) {
			out = append(out, sys)
		}
	}
	return out
}

// rrLabel says what a -rr system measures, for the tables.
func rrLabel(sys string) string {
	switch sys {
	case rrP2PStream, rrTCPStream, rrQUIC:
		return "one raw stream"
	case rrCLIDir:
		return "HTTP through forward -> serve --dir"
	case rrCLIProxy:
		return "HTTP through forward -> serve --proxy"
	}
	return "HTTP over one connection"
}

func printPath(w io.Writer, pr pathReport) {
	fmt.Fprintf(w, "\n%s: %s (namespace default TCP congestion control %s; stall limit 2 RTO ~ %v)\n",
		pr.name, pr.path.Summary, pr.cc, pr.stallLimit())
	if len(pr.transfers) > 0 {
		printTransfers(w, pr)
	}
	if len(pr.rts) > 0 {
		printRoundTrips(w, pr)
	}
}

// printTransfers prints the table of transfers and their failures.
func printTransfers(w io.Writer, pr pathReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "system\tfinished\tMB/s median [min-max]\tx best kernel TCP\tx quic-go\tCPU-s/GiB\tlongest stall")
	for _, sys := range pr.systems() {
		s := pr.summary(sys)
		mark := ""
		if time.Duration(s.maxStall*float64(time.Second)) > pr.stallLimit() {
			mark = " !"
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\t%s\t%.0f ms%s\n", sys, s.finished, s.runs, s.rate.format(2),
			s.vsTCP.format(2), s.vsQUIC.format(2), s.cpuPerGiB.format(1), s.maxStall*1000, mark)
	}
	tw.Flush()
	for _, t := range pr.transfers {
		if t.Err != "" {
			fmt.Fprintf(w, "  %s rep %d: %s\n", t.System, t.Rep, t.Err)
		}
	}
}

// printRoundTrips prints the table of -rr round trips and their failures.
func printRoundTrips(w io.Writer, pr pathReport) {
	fmt.Fprintln(w, "100-byte request/response round trips, per-repetition medians [min-max over repetitions]:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "system\tmeasures\tmedian µs\tp90 µs\tratio to same-run baseline")
	for _, sys := range pr.rrSystems() {
		med, ratio := pr.rtSpread(sys)
		var p90 []float64
		for _, rt := range pr.rts {
			if rt.System == sys && rt.Err == "" && rt.P90US > 0 {
				p90 = append(p90, rt.P90US)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s x %s\n", sys, rrLabel(sys), med.format(0), spreadOf(p90).format(0),
			ratio.format(2), rrBaseline(sys))
	}
	tw.Flush()
	for _, rt := range pr.rts {
		if rt.Err != "" {
			fmt.Fprintf(w, "  rr %s rep %d: %s\n", rt.System, rt.Rep, rt.Err)
		}
	}
}

// printSummary checks the team's goals for p2phttp against the runs: each line says the measured median
// ratio and whether it meets the goal.
func printSummary(w io.Writer, report []pathReport) {
	fmt.Fprintln(w, "\ngoals for p2phttp (medians of per-repetition ratios in the same lab):")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	byName := map[string]pathReport{}
	for _, pr := range report {
		byName[pr.name] = pr
		s := pr.summary(sysP2P)
		if s.runs == 0 {
			continue
		}
		base := strings.TrimSuffix(pr.name, "+hog")
		if base == "clean" {
			if s.vsQUIC.n > 0 {
				fmt.Fprintf(w, "  %-16s >= 1.5x quic-go: %.2f, %s\n", pr.name, s.vsQUIC.median, verdict(s.vsQUIC.median >= 1.5))
			}
		} else if s.vsTCP.n > 0 {
			fmt.Fprintf(w, "  %-16s >= 0.9x best kernel TCP: %.2f, %s\n", pr.name, s.vsTCP.median, verdict(s.vsTCP.median >= 0.9))
		}
		stallOK := time.Duration(s.maxStall*float64(time.Second)) <= pr.stallLimit() && s.finished == s.runs
		fmt.Fprintf(w, "  %-16s every run finished, no stall > %v: %d/%d finished, longest %.0f ms, %s\n",
			pr.name, pr.stallLimit(), s.finished, s.runs, s.maxStall*1000, verdict(stallOK))
		if q := pr.summary(sysQUIC); q.cpuPerGiB.n > 0 && s.cpuPerGiB.n > 0 {
			fmt.Fprintf(w, "  %-16s CPU-s/GiB <= quic-go's: %.1f vs %.1f, %s\n", pr.name, s.cpuPerGiB.median,
				q.cpuPerGiB.median, verdict(s.cpuPerGiB.median <= q.cpuPerGiB.median))
		}
	}
	for _, pr := range report {
		if _, ratio := pr.rtSpread(rrP2PStream); ratio.n > 0 {
			fmt.Fprintf(w, "  %-16s 100-byte round trip over one stream <= 1.3x kernel TCP's: %.2f, %s\n", pr.name,
				ratio.median, verdict(ratio.median <= 1.3))
		}
		for _, sys := range []string{rrCLIDir, rrCLIProxy} {
			if _, ratio := pr.rtSpread(sys); ratio.n > 0 {
				fmt.Fprintf(w, "  %-16s (not the goal's measure) 100-byte HTTP GET %s: %.2fx HTTP over kernel TCP\n",
					pr.name, strings.TrimPrefix(rrLabel(sys), "HTTP "), ratio.median)
			}
		}
	}
	for _, suffix := range []string{"", "+hog"} {
		with, okW := byName["reorder20"+suffix]
		without, okWO := byName["loss20"+suffix]
		if !okW || !okWO {
			continue
		}
		for _, sys := range with.systems() {
			a, b := with.summary(sys).rate, without.summary(sys).rate
			if a.n == 0 || b.n == 0 {
				continue
			}
			cost := 1 - a.median/b.median
			line := fmt.Sprintf("  reorder20%s vs loss20%s, %s: reordering costs %.0f%% of the rate", suffix, suffix, sys, cost*100)
			if sys == sysP2P {
				line += ", under 10%: " + verdict(cost < 0.10)
			}
			fmt.Fprintln(w, line)
		}
	}
}
