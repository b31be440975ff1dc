//go:build linux

package nslab

import (
	"testing"
	"time"
)

func TestPaths(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Paths() {
		if p.Name == "" || p.Summary == "" || seen[p.Name] {
			t.Errorf("path %q: empty or repeated name, or no summary", p.Name)
		}
		seen[p.Name] = true
		if err := validate(p.Config(7)); err != nil {
			t.Errorf("path %s: %v", p.Name, err)
		}
		// The stated RTT is what the delays add up to.
		var rtt time.Duration
		for _, im := range []*Impairment{p.SenderUp, p.SenderDown, p.ReceiverUp, p.ReceiverDown} {
			if im != nil {
				rtt += im.Delay
			}
		}
		if rtt != p.RTT {
			t.Errorf("path %s: RTT %v, but the delays add up to %v", p.Name, p.RTT, rtt)
		}
		got, err := PathByName(p.Name)
		if err != nil || got.Name != p.Name {
			t.Errorf("PathByName(%q) = %q, %v", p.Name, got.Name, err)
		}
		cfg := p.Config(7)
		if a, b := cfg.Routers[0].Peers[0], cfg.Routers[1].Peers[0]; a.Name != "a" || b.Name != "b" || a.Seed != 7 || b.Seed != 8 {
			t.Errorf("path %s: peers %+v and %+v, want a (seed 7) and b (seed 8)", p.Name, a, b)
		}
	}
	for _, want := range []string{"clean", "bottleneck", "lossy80", "lossy160", "loss20", "reorder20", "bdp"} {
		if !seen[want] {
			t.Errorf("no path %q", want)
		}
	}
	if _, err := PathByName("nope"); err == nil {
		t.Error("PathByName(nope) found a path")
	}
	if cfg := Paths()[0].Config(0); cfg.Routers[1].Peers[0].Seed != 0 {
		t.Errorf("seed 0 should leave both links randomly seeded, got %d for b", cfg.Routers[1].Peers[0].Seed)
	}
}
