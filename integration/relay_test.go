//go:build linux

package integration

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/nslab"
	"github.com/stretchr/testify/require"
)

var natTypes = []nslab.NATType{nslab.FullCone, nslab.RestrictedCone, nslab.PortRestrictedCone, nslab.Symmetric}

// punchable says whether a direct path can be punched between a peer behind NAT a and one behind NAT b: a
// symmetric NAT gives an unpredictable port towards each new destination, which a full cone lets in, a restricted
// cone learns from the punches it receives, and a port-restricted cone finds by probing random ports while the
// symmetric side punches from many sockets (the birthday paradox). Two symmetric NATs leave neither side an
// address to aim at.
func punchable(a, b nslab.NATType) bool {
	return a != nslab.Symmetric || b != nslab.Symmetric
}

// routeUpgraded is the line the CLI prints when a path that started on the relay moves to a direct route.
var routeUpgraded = regexp.MustCompile(`upgraded to a direct path`)

// TestNATMatrix meets across every ordered pair of NAT types, serve behind the first and forward behind the second,
// with the signalling server's TURN relay: every pair connects, on a direct path wherever the NATs allow one (at
// once or after starting on the relay) and on the relay otherwise, as the CLI says; a page fetched with curl through
// forward arrives byte-exact. A last case blocks all UDP at one router: the meeting goes over TURN/TCP.
func TestNATMatrix(t *testing.T) {
	requireBinary(t)
	type pair struct {
		name      string
		routers   []nslab.RouterConfig
		wantRelay bool
	}
	var pairs []pair
	for _, a := range natTypes {
		for _, b := range natTypes {
			pairs = append(pairs, pair{name: fmt.Sprintf("%v serves %v", a, b), routers: twoRouters(a, b), wantRelay: !punchable(a, b)})
		}
	}
	pairs = append(pairs, pair{name: "no UDP at the guest's router", wantRelay: true, routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "a"}}},
		{NAT: nslab.PortRestrictedCone, BlockUDP: true, Peers: []nslab.PeerConfig{{Name: "b"}}},
	}})
	for i, pc := range pairs {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			lab := nslab.Start(t, nslab.Config{Routers: pc.routers})
			startSignal(t, lab)
			code := fmt.Sprintf("%d-lab-matrix-%d", 100+rand.IntN(900), i)
			startP2P(t, lab.Peer("a"), "serve", peerArgs("serve", "--dir", dataDir, code)...)
			fwd := startP2P(t, lab.Peer("b"), "forward", peerArgs("forward", code, "--listen", "127.0.0.1:8000")...)
			fwd.waitConnected(t, connectTimeout)
			fwd.mu.Lock()
			line := fwd.connected
			fwd.mu.Unlock()
			relayed := strings.Contains(line, "connected via relay")
			switch {
			case pc.wantRelay:
				require.True(t, relayed, "connected directly where only the relay can work: %s", line)
				// Punching goes on; it must not find a direct path here. Let it try for a while.
				time.Sleep(3 * time.Second)
				require.NotRegexp(t, routeUpgraded, fwd.output(), "upgraded to a direct path where none can work")
			case relayed:
				waitOutput(t, fwd, routeUpgraded, 20*time.Second)
			}
			curlPage(t, lab.Peer("b"))
			t.Logf("%s", strings.TrimSpace(fwd.output()))
		})
	}
}

// waitOutput waits until p's stderr matches re, or fails t after d.
func waitOutput(t *testing.T, p *proc, re *regexp.Regexp, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !re.MatchString(p.output()) {
		require.False(t, time.Now().After(deadline), "%s did not print %q within %v", p.name, re, d)
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q", p.name, p.err, re)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
