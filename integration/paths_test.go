//go:build linux

package integration

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/p2phttp/p2phttp/internal/meter"
	"github.com/p2phttp/p2phttp/internal/nslab"
	"github.com/stretchr/testify/require"
)

// maxStall is the longest p2phttp may go without delivering a byte on an impaired path. Every path's two
// RTOs are well under a second; a wait this long means a timer or recovery bug, not a slow machine. (How fast
// p2phttp is on these paths is measured by bench/transportlab, not here.)
const maxStall = 5 * time.Second

// TestImpairedPaths moves a few MiB with p2phttp serve/get over each impaired standard path (the clean path
// is in TestNATScenarios): the bytes must arrive exactly, and never stop for longer than maxStall.
func TestImpairedPaths(t *testing.T) {
	requireBinary(t)
	want := sha256.Sum256(bigData[:pathFileSize])
	for i, p := range nslab.Paths() {
		if p.Name == "clean" {
			continue
		}
		t.Run(p.Name, func(t *testing.T) {
			lab := nslab.Start(t, p.Config(uint64(1000+i)))
			startSignal(t, lab)
			code := fmt.Sprintf("%d-lab-path-%d", 100+rand.IntN(900), i)
			startP2P(t, lab.Peer("a"), "serve", peerArgs("serve", "--dir", dataDir, code)...)
			m := meter.New()
			get := startP2PTo(t, lab.Peer("b"), "get", m, peerArgs("get", code, "/"+pathFileName)...)
			get.waitConnected(t, connectTimeout)
			require.NoError(t, get.wait(t, transferTimeout), "get")
			s := m.Snapshot()
			require.Equal(t, int64(pathFileSize), s.Bytes, "bytes got")
			require.Equal(t, want, s.SHA256, "SHA-256 of the bytes got")
			require.LessOrEqual(t, s.MaxGap, maxStall, "no byte arrived for %v (limit %v)", s.MaxGap.Round(time.Millisecond), maxStall)
			t.Logf("%s (%s): %d bytes in %v, longest stall %v; sender's link: %s; receiver's link: %s",
				p.Name, p.Summary, s.Bytes, s.Duration().Round(time.Millisecond), s.MaxGap.Round(time.Millisecond),
				linkSummary(lab.Peer("a").Link), linkSummary(lab.Peer("b").Link))
		})
	}
}

// linkSummary counts what a peer's link did, to show the impairments were really applied.
func linkSummary(l *nslab.Link) string {
	if l == nil {
		return "plain veth"
	}
	st := l.Stats()
	return fmt.Sprintf("up %d frames, %d lost, %d queue drops; down %d frames, %d lost, %d queue drops",
		st.ToRouter.Link.Offered, st.ToRouter.Link.Lost, st.ToRouter.Link.QueueDrops,
		st.ToPeer.Link.Offered, st.ToPeer.Link.Lost, st.ToPeer.Link.QueueDrops)
}
