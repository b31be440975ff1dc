package engine

import (
	"bytes"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitingLink is a ReadingLink whose ReadUntil reads nothing itself: it waits for Interrupt (another goroutine
// delivers everything), so a Read it holds sees its data only if every wake of the Read interrupts it.
type waitingLink struct {
	*udpLink
	interrupt chan struct{} // capacity 1
	calls     atomic.Int64
}

func (l *waitingLink) ReadUntil(w Waiter) bool {
	l.calls.Add(1)
	for !w.Woken() {
		<-l.interrupt
	}
	return true
}

func (l *waitingLink) WriteWaits() {}

func (l *waitingLink) Interrupt() {
	select {
	case l.interrupt <- struct{}{}:
	default:
	}
}

// newWaitingPair is newPair with b's Read waiting in a waitingLink.
func newWaitingPair(t *testing.T) (p *pair, wl *waitingLink) {
	p = newPair(t, pairOpts{wrapB: func(l *udpLink) Link {
		wl = &waitingLink{udpLink: l, interrupt: make(chan struct{}, 1)}
		return wl
	}})
	return p, wl
}

// A Read waiting in its link's ReadUntil is woken by every way a Read is woken: data, a deadline set while it waits,
// a close, a transfer's worth of wakes.
func TestReadingLinkWakes(t *testing.T) {
	p, wl := newWaitingPair(t)
	ca, cb := p.connect(t)

	msg, got := []byte("request"), make([]byte, 16)
	for range 200 {
		_, err := ca.Write(msg)
		require.NoError(t, err)
		n, err := cb.Read(got)
		require.NoError(t, err)
		require.Equal(t, msg, got[:n])
	}
	require.Positive(t, wl.calls.Load(), "Read waited in ReadUntil")

	_ = cb.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := cb.Read(got)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "a deadline passing in ReadUntil")

	_ = cb.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := cb.Read(got)
		errc <- err
	}()
	waitFor(t, "Read in ReadUntil", func() bool { return cb.onLink.Load() > 0 }, 10*time.Second)
	_ = cb.SetReadDeadline(time.Now())
	require.ErrorIs(t, <-errc, os.ErrDeadlineExceeded, "a deadline set while in ReadUntil")

	_ = cb.SetReadDeadline(time.Time{})
	data := randomBytes(4<<20, 3)
	go func() {
		_, _ = ca.Write(data)
		_ = ca.CloseWrite()
	}()
	all, err := io.ReadAll(cb)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, all), "transfer through ReadUntil")

	_, cc := p.connect(t) // cb read to EOF: its Read no longer waits
	go func() {
		_, err := cc.Read(got)
		errc <- err
	}()
	waitFor(t, "Read in ReadUntil", func() bool { return cc.onLink.Load() > 0 }, 10*time.Second)
	require.NoError(t, cc.Close())
	require.ErrorIs(t, <-errc, ErrClosed, "a close while in ReadUntil")
}
