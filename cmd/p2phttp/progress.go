package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress is a writer that counts bytes and redraws one status line (bytes, rate, ETA) on out, at most every
// interval. Done ends the line.
type progress struct {
	out      io.Writer
	total    int64 // -1 when unknown
	n        int64 // bytes of the resource so far
	base     int64 // of n, those that were there before (a resumed download); the rate counts the others
	start    time.Time
	last     time.Time
	interval time.Duration
	now      func() time.Time
	drawn    bool
}

func newProgress(out io.Writer, total int64) *progress {
	now := time.Now
	t := now()
	return &progress{out: out, total: total, start: t, interval: 200 * time.Millisecond, now: now}
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if t := p.now(); t.Sub(p.last) >= p.interval {
		p.last = t
		p.draw(t)
	}
	return len(b), nil
}

// Done draws the final line and ends it.
func (p *progress) Done() {
	p.draw(p.now())
	if p.drawn {
		fmt.Fprintln(p.out)
	}
}

func (p *progress) draw(t time.Time) {
	p.drawn = true
	fmt.Fprintf(p.out, "\r%s\x1b[K", p.line(t))
}

// line is the status text at time t, e.g. "12.0 MiB / 48.0 MiB  25%  4.0 MiB/s  ETA 9s".
func (p *progress) line(t time.Time) string {
	elapsed := t.Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.n-p.base) / elapsed.Seconds()
	}
	if p.total < 0 {
		return fmt.Sprintf("%s  %s/s", formatBytes(p.n), formatBytes(int64(rate)))
	}
	pct := 100
	if p.total > 0 {
		pct = int(p.n * 100 / p.total)
	}
	eta := "--"
	switch {
	case p.n >= p.total:
		eta = "0s"
	case rate > 0:
		eta = time.Duration(float64(p.total-p.n) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%s / %s  %d%%  %s/s  ETA %s", formatBytes(p.n), formatBytes(p.total), pct,
		formatBytes(int64(rate)), eta)
}

// formatBytes prints n in binary units: "512 B", "1.5 KiB", "12.0 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// isTerminal reports whether w is a terminal: a character device other than /dev/null, using only the standard
// library.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}
