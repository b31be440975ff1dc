//go:build linux

package nslab

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPaths(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Paths() {
		assert.NotEmpty(t, p.Name, "path name")
		assert.NotEmpty(t, p.Summary, "path %q: summary", p.Name)
		assert.False(t, seen[p.Name], "path %q: repeated name", p.Name)
		seen[p.Name] = true
		assert.NoError(t, validate(p.Config(7)), "path %s", p.Name)
		// The stated RTT is what the delays add up to.
		var rtt time.Duration
		for _, im := range []*Impairment{p.SenderUp, p.SenderDown, p.ReceiverUp, p.ReceiverDown} {
			if im != nil {
				rtt += im.Delay
			}
		}
		assert.Equal(t, p.RTT, rtt, "path %s: what the delays add up to against the stated RTT", p.Name)
		got, err := PathByName(p.Name)
		if assert.NoError(t, err, "PathByName(%q)", p.Name) {
			assert.Equal(t, p.Name, got.Name, "PathByName(%q)", p.Name)
		}
		cfg := p.Config(7)
		a, b := cfg.Routers[0].Peers[0], cfg.Routers[1].Peers[0]
		assert.Equal(t, "a", a.Name, "path %s: first peer", p.Name)
		assert.Equal(t, "b", b.Name, "path %s: second peer", p.Name)
		assert.Equal(t, uint64(7), a.Seed, "path %s: seed of a", p.Name)
		assert.Equal(t, uint64(8), b.Seed, "path %s: seed of b", p.Name)
	}
	for _, want := range []string{"clean", "bottleneck", "lossy80", "lossy160", "loss20", "reorder20", "bdp"} {
		assert.True(t, seen[want], "no path %q", want)
	}
	_, err := PathByName("nope")
	assert.Error(t, err, "PathByName(nope) found a path")
	cfg := Paths()[0].Config(0)
	assert.Zero(t, cfg.Routers[1].Peers[0].Seed, "seed 0 should leave both links randomly seeded")
}
