package engine

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wakeTimers are the timers this platform has, by name.
func wakeTimers() map[string]func(func()) wakeTimer {
	return map[string]func(func()) wakeTimer{
		"runtime":  func(f func()) wakeTimer { return newRuntimeTimer(f) },
		"platform": newWakeTimer,
	}
}

// A timer fires once per deadline set, a deadline set again replaces the
// last, and a stopped or closed timer does not fire.
func TestWakeTimer(t *testing.T) {
	for name, newTimer := range wakeTimers() {
		t.Run(name, func(t *testing.T) {
			var fired atomic.Int32
			wt := newTimer(func() { fired.Add(1) })
			waitFired := func(n int32) {
				require.Eventually(t, func() bool { return fired.Load() >= n }, 5*time.Second, time.Millisecond)
			}

			wt.set(time.Millisecond)
			waitFired(1)
			wt.set(-time.Second) // passed: at once
			waitFired(2)
			time.Sleep(30 * time.Millisecond)
			require.EqualValues(t, 2, fired.Load(), "fired with no deadline set")

			wt.set(10 * time.Millisecond)
			wt.set(time.Hour)
			wt.set(20 * time.Millisecond)
			wt.stop()
			time.Sleep(60 * time.Millisecond)
			require.EqualValues(t, 2, fired.Load(), "fired at a deadline that was replaced or stopped")
			wt.set(10 * time.Millisecond)
			waitFired(3)

			wt.set(10 * time.Millisecond)
			wt.close()
			time.Sleep(30 * time.Millisecond)
			require.EqualValues(t, 3, fired.Load(), "fired after close")
			wt.close() // a second close does nothing
		})
	}
}

// The queue follows the earliest deadline later only on an exact timer (a
// runtime timer wakes the process at the first deadline it was set to
// anyway), and then at most once per laterMoveEvery; earlier always.
func TestTimerQueueArm(t *testing.T) {
	for name, newTimer := range wakeTimers() {
		t.Run(name, func(t *testing.T) {
			q := newTimerQueue()
			q.t.close()
			q.t = newTimer(q.fire)
			defer q.stop()
			c, c2 := &Conn{timerIdx: -1}, &Conn{timerIdx: -1}
			soon, later := time.Now().Add(time.Minute), time.Now().Add(time.Hour)
			armed := func(movedAt time.Time) time.Time {
				q.mu.Lock()
				defer q.mu.Unlock()
				q.movedAt = movedAt
				return q.armedAt
			}
			exact := q.t.exact()
			q.schedule(c, soon)
			require.Equal(t, soon, armed(time.Now()))
			q.schedule(c, later) // within laterMoveEvery of the last move
			require.Equal(t, soon, armed(time.Time{}), "moved later within laterMoveEvery")
			q.schedule(c2, later.Add(time.Hour))
			if exact {
				require.Equal(t, later, armed(time.Time{}), "an exact timer follows the deadline later")
			} else {
				require.Equal(t, soon, armed(time.Time{}), "a runtime timer stays at the first deadline")
			}
			q.schedule(c, soon.Add(-time.Second))
			require.Equal(t, soon.Add(-time.Second), armed(time.Now()), "a deadline moved earlier")
			q.schedule(c, time.Time{})
			q.schedule(c2, time.Time{}) // within laterMoveEvery of the last move
			require.Equal(t, soon.Add(-time.Second), armed(time.Time{}), "moved later within laterMoveEvery")
			q.schedule(c, later)
			armed(time.Time{})
			q.schedule(c, time.Time{})
			require.Equal(t, exact, armed(time.Time{}).IsZero(), "armed with no deadline (exact %v)", exact)
		})
	}
}

// stillTimer is an exact wakeTimer that never fires.
type stillTimer struct{}

func (stillTimer) set(time.Duration) {}
func (stillTimer) stop()             {}
func (stillTimer) close()            {}
func (stillTimer) exact() bool       { return true }

// A delivered datagram runs the timers that are due when the timer has not
// fired: a busy process polls the timer's file late.
func TestDeliveryRunsDueTimers(t *testing.T) {
	p := newPair(t, pairOpts{})
	ca, _ := p.connect(t)
	q := p.a.timers
	q.mu.Lock()
	old := q.t
	q.t = stillTimer{}
	q.mu.Unlock()
	old.close()
	timerAt := func() time.Time {
		q.mu.Lock()
		defer q.mu.Unlock()
		return ca.timerAt
	}
	soon := time.Now().Add(50 * time.Millisecond)
	q.schedule(ca, soon)
	p.a.DeliverDatagrams(nil) // nothing due yet
	require.Equal(t, soon, timerAt())
	time.Sleep(time.Until(soon))
	p.a.DeliverDatagrams(nil)
	require.NotEqual(t, soon, timerAt(), "the due connection's timers did not run")
}
