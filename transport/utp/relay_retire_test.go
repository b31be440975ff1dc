package utp

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A relayed 16 MiB transfer survives each side replacing its TURN allocation mid-way, as a peer does when its
// credentials near their expiry: the new allocation is made, the old one retired, and once no path uses it any
// more it is released. The bytes arrive exact, the path stays relayed throughout, and the retired relays are gone.
func TestRetiredRelayMovesPaths(t *testing.T) {
	rp := newRelayPair(t, Config{}, false, true) // the direct route is blocked: relay only
	renewMidTransfer(t, rp)
}

// TestRelayMoveBehindRestrictedNATs: behind port-restricted NATs, which admit only addresses their socket sent to,
// a peer's new relayed address is reachable from the other side's socket only once it was announced and punched:
// without the announcement the path could keep going through a single allocation only by luck of which side
// renewed, and would end relay to relay.
func TestRelayMoveBehindRestrictedNATs(t *testing.T) {
	rp := newRelayPair(t, Config{}, false, true)
	rp.fw.restricted.Store(true)
	rp.accFW.restricted.Store(true)
	renewMidTransfer(t, rp)
	for _, c := range []struct {
		p    *Path
		peer *Transport
	}{{rp.dialer, rp.acceptorTr}, {rp.acceptor, rp.dialerTr}} {
		relays := c.peer.readyRelays()
		require.Len(t, relays, 1)
		c.p.mu.Lock()
		cands := slices.Clone(c.p.cands)
		c.p.mu.Unlock()
		require.Contains(t, cands, relays[0].Candidate(), "the peer's new relay is a candidate")
	}
}

// TestRelayMoveToPeerWithoutRelay: when only one side has a relay and the other is behind a port-restricted NAT,
// the relay route survives its renewals only because the other side learns each new relayed address and punches it.
func TestRelayMoveToPeerWithoutRelay(t *testing.T) {
	rp := newRelayPairWith(t, Config{}, false, true, false)
	rp.fw.restricted.Store(true)
	rp.accFW.restricted.Store(true)
	renewMidTransfer(t, rp)
}

// renewMidTransfer replaces the dialer's relay allocation, then the acceptor's (or the dialer's again when the
// acceptor has none), during a relayed transfer, which
// must arrive byte-exact, and the paths must end on a relay route through a single allocation.
func renewMidTransfer(t *testing.T, rp *relayPair) {
	t.Helper()
	udpServer := rp.dialerRelay.Server().String()

	const size = 16 << 20
	var phase atomic.Int32
	t.Cleanup(func() { phase.Store(5) }) // a failed replacement releases the waiting reader
	// The reader waits while an allocation is replaced, so the transfer cannot end before both were.
	progress := func(n int64) {
		switch {
		case n > size/4 && phase.CompareAndSwap(0, 1):
		case n > size/2 && phase.CompareAndSwap(2, 3):
		}
		for p := phase.Load(); p == 1 || p == 3; p = phase.Load() {
			time.Sleep(5 * time.Millisecond)
		}
	}
	done := make(chan transferResult, 1)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		res, err := transferVerified(ctx, rp.dialer, rp.acceptor, size, 64<<10, 5, progress)
		errc <- err
		done <- res
	}()

	replace := func(tr *Transport, old *Relay, user string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		fresh, err := tr.AllocateRelay(ctx, relayConfig(t, udpServer, user, false))
		require.NoError(t, err, "the new allocation")
		require.NotEqual(t, old.Addr(), fresh.Addr())
		old.Retire()
		require.True(t, old.Retiring())
		deadline := time.Now().Add(20 * time.Second)
		for old.InUse() {
			require.False(t, time.Now().After(deadline), "a path still uses the retired relay %v", old.Addr())
			time.Sleep(20 * time.Millisecond)
		}
		require.NoError(t, old.Close())
		for _, r := range tr.readyRelays() {
			require.NotEqual(t, old, r, "the closed relay is still one of the transport's")
		}
	}
	waitPhase := func(p int32) {
		t.Helper()
		for phase.Load() != p {
			select {
			case err := <-errc:
				t.Fatalf("the transfer ended before phase %d: %v", p, err)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitPhase(1)
	replace(rp.dialerTr, rp.dialerRelay, "dialer")
	phase.Store(2)
	waitPhase(3)
	if rs := rp.acceptorTr.readyRelays(); len(rs) > 0 {
		replace(rp.acceptorTr, rs[0], "acceptor")
	} else {
		replace(rp.dialerTr, rp.dialerTr.readyRelays()[0], "dialer again")
	}
	phase.Store(4)

	require.NoError(t, <-errc, "transfer")
	res := <-done
	require.Equal(t, int64(size), res.n, "bytes received")
	require.True(t, res.sent == res.received, "SHA-256 of received data %x, sent %x", res.received, res.sent)
	for _, p := range []*Path{rp.dialer, rp.acceptor} {
		require.True(t, p.Route().Relayed, "route %+v, want relayed", p.Route())
		require.NoError(t, p.Err())
		// Each side announced its new allocation: the path leaves the relay-to-relay route for one through a
		// single allocation (our socket to the peer's relay, or our relay to the peer's socket).
		waitSingleAllocation(t, p, 20*time.Second)
	}
}

// waitSingleAllocation waits until p's route goes through one relay allocation that neither side retires.
func waitSingleAllocation(t *testing.T, p *Path, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		changed := p.RouteChanged()
		p.mu.Lock()
		cur := p.loadRoute()
		ok := p.rank(cur) == rankRelay && !p.relayToRelay(cur) && !p.retired(cur)
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("route still %v after %v, want one through a single allocation", cur.id(), within)
		}
	}
}
