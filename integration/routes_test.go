//go:build linux

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/nslab"
	"github.com/stretchr/testify/require"
)

// The lines the CLI prints when the path changes route, and what -v logs when relay credentials are renewed.
var (
	connectedViaRelay = regexp.MustCompile(`connected via relay`)
	fellBack          = regexp.MustCompile(`the direct path died after \S+; back on relay`)
	renewed           = regexp.MustCompile(`relay credentials renewed`)
)

// blockDirectUDP makes router r drop UDP between its WAN address and the other router's, both ways: the peers'
// punched route dies, their routes to the relay on the public host do not. unblock removes the rule.
func blockDirectUDP(t *testing.T, r *nslab.Router, other *nslab.Router) (unblock func()) {
	t.Helper()
	ruleset := fmt.Sprintf(`table inet p2hblock {
	chain forward {
		type filter hook forward priority -10; policy accept;
		ip daddr %[1]s udp dport 1-65535 drop
		ip saddr %[1]s udp sport 1-65535 drop
	}
}
`, other.WAN)
	cmd := r.Command(t.Context(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "nft: %s", out)
	return func() {
		t.Helper()
		out, err := r.Command(context.WithoutCancel(t.Context()), "nft", "delete", "table", "inet", "p2hblock").CombinedOutput()
		require.NoError(t, err, "nft: %s", out)
	}
}

// partSize is how much of get's output file has arrived (in FILE.part until complete).
func partSize(out string) int64 {
	for _, name := range []string{out + ".part", out} {
		if fi, err := os.Stat(name); err == nil {
			return fi.Size()
		}
	}
	return 0
}

// waitSize waits until at least n bytes of get's output file arrived, or fails t after d.
func waitSize(t *testing.T, out string, n int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for partSize(out) < n {
		require.False(t, time.Now().After(deadline), "%d bytes of %s arrived within %v, want %d", partSize(out), out, d, n)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRouteChangesMidTransfer moves a 32 MiB file from serve to get between two port-restricted cone NATs whose
// direct route is blocked at first: the transfer starts on the relay, upgrades to the direct path when the block
// lifts while bytes are still arriving, and falls back on the relay when the direct route is cut again (a router
// dropping the peers' UDP to each other, not to the relay), and the file arrives byte-exact. The guest's CLI says
// each change in one line. Peer b's link runs at 6 MB/s each way, so the transfer lasts a few seconds.
func TestRouteChangesMidTransfer(t *testing.T) {
	requireBinary(t)
	link := func() *nslab.Impairment { return &nslab.Impairment{Rate: 6e6, QueueBytes: 128 << 10} }
	lab := nslab.Start(t, nslab.Config{Routers: []nslab.RouterConfig{
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "a"}}},
		{NAT: nslab.PortRestrictedCone, Peers: []nslab.PeerConfig{{Name: "b", Up: link(), Down: link()}}},
	}})
	startSignal(t, lab)
	unblock := blockDirectUDP(t, lab.Routers[1], lab.Routers[0])

	code := fmt.Sprintf("%d-lab-routes", 100+rand.IntN(900))
	startP2P(t, lab.Peer("a"), "serve", peerArgs("serve", "--dir", dataDir, code)...)
	out := filepath.Join(t.TempDir(), bigFileName)
	get := startP2P(t, lab.Peer("b"), "get", peerArgs("get", code, "/"+bigFileName, "-o", out)...)
	get.waitConnected(t, connectTimeout)
	get.mu.Lock()
	line := get.connected
	get.mu.Unlock()
	require.Regexp(t, connectedViaRelay, line, "the direct route is blocked: the path must start on the relay")

	// A few MiB go over the relay first.
	waitSize(t, out, 4<<20, 20*time.Second)
	unblock()
	waitOutput(t, get, routeUpgraded, 20*time.Second)
	at := partSize(out)
	require.Less(t, at, int64(bigFileSize), "the upgrade came after the transfer ended: not mid-way")
	t.Logf("upgraded with %.1f MiB arrived", float64(at)/(1<<20))

	// Some bytes go the direct way, then it is cut.
	waitSize(t, out, at+(2<<20), 20*time.Second)
	blockDirectUDP(t, lab.Routers[1], lab.Routers[0])
	waitOutput(t, get, fellBack, 20*time.Second)
	at = partSize(out)
	require.Less(t, at, int64(bigFileSize), "the fallback came after the transfer ended: not mid-way")
	t.Logf("fell back on the relay with %.1f MiB arrived", float64(at)/(1<<20))

	require.NoError(t, get.wait(t, transferTimeout), "get")
	sum, n := fileSum(t, out)
	require.Equal(t, int64(bigFileSize), n, "bytes got")
	require.Equal(t, bigSum, sum, "SHA-256 of the bytes got")
	t.Logf("%s", strings.TrimSpace(get.output()))
}

// TestRelayCredentialRenewal relays a 32 MiB transfer between two symmetric NATs (only the relay works) through a
// signalling server whose relay credentials last 6 s, slowed to 3 MB/s by the relay's rate limit so that it outlives
// several expiries: both peers renew their credentials, allocate again and move the path to the new allocation
// while the bytes flow, and the file arrives byte-exact.
func TestRelayCredentialRenewal(t *testing.T) {
	requireBinary(t)
	lab := nslab.Start(t, nslab.Config{Routers: twoRouters(nslab.Symmetric, nslab.Symmetric)})
	startSignal(t, lab, "--turn-credential-ttl", "6s", "--poll-wait", "1s", "--turn-rate", "3000000")
	code := fmt.Sprintf("%d-lab-renewal", 100+rand.IntN(900))
	serve := startP2P(t, lab.Peer("a"), "serve", append(peerArgs("serve", "--dir", dataDir, code), "-v")...)
	// A guest that came before the host's allocation existed would not know a relayed address of the host; between
	// two symmetric NATs its path could then not move when the guest's own allocation is replaced.
	waitOutput(t, serve, regexp.MustCompile(`msg="relay allocated"`), 20*time.Second)
	out := filepath.Join(t.TempDir(), bigFileName)
	get := startP2P(t, lab.Peer("b"), "get", append(peerArgs("get", code, "/"+bigFileName, "-o", out), "-v")...)
	get.waitConnected(t, connectTimeout)
	get.mu.Lock()
	line, connectedAt := get.connected, get.connectedAt
	get.mu.Unlock()
	require.Regexp(t, connectedViaRelay, line)

	require.NoError(t, get.wait(t, transferTimeout), "get")
	took := time.Since(connectedAt)
	sum, n := fileSum(t, out)
	require.Equal(t, int64(bigFileSize), n, "bytes got")
	require.Equal(t, bigSum, sum, "SHA-256 of the bytes got")
	guestRenewals := len(renewed.FindAllString(get.output(), -1))
	hostRenewals := len(renewed.FindAllString(serve.output(), -1))
	t.Logf("32 MiB relayed in %v; renewals: guest %d, host %d", took.Round(time.Millisecond), guestRenewals, hostRenewals)
	// Credentials of 6 s are renewed about every 3 s.
	require.GreaterOrEqual(t, guestRenewals, 2, "the guest renewed its relay credentials %d times in %v", guestRenewals, took)
	require.GreaterOrEqual(t, hostRenewals, 2, "the host renewed its relay credentials %d times in %v", hostRenewals, took)
	require.NotRegexp(t, fellBack, get.output())
}
