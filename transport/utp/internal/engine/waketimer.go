package engine

import "time"

// wakeTimer calls its function, on a goroutine of its own, once the deadline
// last set passes. The timer queue keeps one per endpoint.
type wakeTimer interface {
	// set arms the timer to fire after d (at once if d is not positive),
	// replacing the deadline set before.
	set(d time.Duration)
	// stop disarms the timer.
	stop()
	// close stops the timer for good and waits until its goroutine, if it
	// has one waiting, has ended; the function is not called after that.
	// It must not be called from the function.
	close()
	// exact reports whether a deadline set later takes back the wake-up at
	// the earlier one. Where it does not, the process wakes at every deadline
	// the timer was ever set to.
	exact() bool
}

// runtimeTimer is a wakeTimer on a Go runtime timer, for platforms without
// a timerfd. The runtime wakes the process at a deadline that a later one
// replaced, and its network poller sleeps in whole milliseconds, so a
// deadline costs a wake-up that comes up to a millisecond late, with the
// runtime's monitor thread polling every 20 µs until it does.
type runtimeTimer struct{ t *time.Timer }

func newRuntimeTimer(fire func()) *runtimeTimer {
	t := time.AfterFunc(time.Hour, fire)
	t.Stop()
	return &runtimeTimer{t}
}

func (r *runtimeTimer) set(d time.Duration) { r.t.Reset(d) }
func (r *runtimeTimer) stop()               { r.t.Stop() }
func (r *runtimeTimer) close()              { r.t.Stop() }
func (r *runtimeTimer) exact() bool         { return false }
